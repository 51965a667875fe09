import type { Request, RequestHandler, Response } from 'express';
import type Redis from 'ioredis';
import type { Logger } from 'pino';
import { RateLimiterMemory, RateLimiterRedis, RateLimiterRes } from 'rate-limiter-flexible';
import { AppError } from '../domain/errors';
import type { Caller } from './access';

const WINDOW_SECONDS = 60;

/**
 * A fixed one-minute window per caller, counted in Redis so that every API
 * instance shares it. The caller is its API key when it sent one we know,
 * otherwise its IP (`TRUST_PROXY` decides which address that is). While
 * Redis is down each instance counts in memory instead, so the limit still
 * holds per instance.
 */
export class RateLimiter {
  private readonly limiter: RateLimiterRedis;

  constructor(
    redis: Redis,
    namespace: string,
    private readonly perMinute: number,
    private readonly logger: Logger,
  ) {
    this.limiter = new RateLimiterRedis({
      storeClient: redis,
      keyPrefix: `${namespace}:rate`,
      points: perMinute,
      duration: WINDOW_SECONDS,
      rejectIfRedisNotReady: true,
      insuranceLimiter: new RateLimiterMemory({ points: perMinute, duration: WINDOW_SECONDS }),
    });
  }

  /** Counts the request against its caller (set by `requireAccess`) and answers 429 with Retry-After past the limit. */
  middleware(): RequestHandler {
    return async (req: Request, res: Response, next) => {
      const caller = res.locals.caller as Caller | undefined;
      const id = caller?.authenticated ? caller.principal : `ip:${req.ip ?? 'unknown'}`;
      try {
        const result = await this.limiter.consume(id);
        this.setHeaders(res, result);
        next();
      } catch (rejection) {
        if (rejection instanceof RateLimiterRes) {
          this.setHeaders(res, rejection);
          const seconds = Math.max(1, Math.ceil(rejection.msBeforeNext / 1000));
          next(
            new AppError(
              429,
              'RATE_LIMITED',
              `Too many requests: at most ${this.perMinute} per minute; retry in ${seconds} s.`,
              undefined,
              {
                'Retry-After': String(seconds),
              },
            ),
          );
          return;
        }
        // Neither store answered: let the request through rather than fail it for a counter.
        this.logger.warn({ err: rejection }, 'rate limiter unavailable; request let through');
        next();
      }
    };
  }

  private setHeaders(res: Response, result: RateLimiterRes): void {
    res.setHeader('RateLimit-Limit', String(this.perMinute));
    res.setHeader('RateLimit-Remaining', String(Math.max(0, result.remainingPoints)));
    res.setHeader('RateLimit-Reset', String(Math.ceil(result.msBeforeNext / 1000)));
  }
}
