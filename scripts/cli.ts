import { parseArgs, type ParseArgsConfig } from 'node:util';

/** A problem with the command line: exit code 2, with the help hint. */
export class UsageError extends Error {
  override name = 'UsageError';
}

type OptionsConfig = NonNullable<ParseArgsConfig['options']>;
type Strict<O extends OptionsConfig> = { args: string[]; strict: true; allowPositionals: false; options: O };

/** The command line's option values (strict, no positionals); an unknown option or a missing value is a UsageError. */
export function parseCommandLine<const O extends OptionsConfig>(
  args: string[],
  options: O,
): ReturnType<typeof parseArgs<Strict<O>>>['values'] {
  try {
    return parseArgs<Strict<O>>({ args, strict: true, allowPositionals: false, options }).values;
  } catch (error) {
    // parseArgs throws a TypeError for an unknown option or a missing value.
    throw new UsageError(error instanceof Error ? error.message : String(error));
  }
}

/**
 * The command's options from process.argv, or its exit code: 0 once `help` is printed (`parse` gave null for
 * --help), 2 once a UsageError is told on stderr with the hint to run --help.
 */
export function commandOptions<T>(command: string, help: string, parse: (argv: string[]) => T | null): T | number {
  let options: T | null;
  try {
    options = parse(process.argv.slice(2));
  } catch (error) {
    if (!(error instanceof UsageError)) throw error;
    process.stderr.write(`${command}: ${error.message}\nRun with --help for the options.\n`);
    return 2;
  }
  if (options === null) {
    process.stdout.write(help);
    return 0;
  }
  return options;
}
