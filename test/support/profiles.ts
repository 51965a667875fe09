/** Both storage profiles: the conformance suites run every store contract against each, whatever STORAGE_PROFILE says. */
export const STORAGE_PROFILES = ['mongodb', 'ferretdb'] as const;
