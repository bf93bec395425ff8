// The driver registry: drivers register an init function under a name;
// newDriver() picks one by DOCKER_DRIVER, by the state already in the root,
// or by priority.

import fs from 'node:fs';
import path from 'node:path';
import { debuglog } from 'node:util';

import { DmError } from '../ioctl/errors.js';
import type { Driver, DriverConfig, InitFunction } from './driver.js';
import { GraphDriverErrorCode, driverError } from './errors.js';

const debug = debuglog('dm');

/** Docker 0.7's order: aufs where the kernel has it, then devicemapper, then vfs. */
export const DEFAULT_PRIORITY: readonly string[] = ['aufs', 'devicemapper', 'vfs'];

/** The environment variable that forces a driver, as in Docker. */
export const DRIVER_ENV = 'DOCKER_DRIVER';

export interface NewDriverOptions extends DriverConfig {
  /** A driver name; overrides DOCKER_DRIVER. */
  name?: string;
  /** Order in which drivers are tried when none is named; default aufs, devicemapper, vfs. */
  priority?: readonly string[];
  /** Environment read for DOCKER_DRIVER; default process.env. */
  env?: NodeJS.ProcessEnv;
}

/** A set of named driver init functions. */
export class DriverRegistry {
  readonly #drivers = new Map<string, InitFunction>();
  #priority: readonly string[] = DEFAULT_PRIORITY;

  /** Registers `init` under `name`; a name can be registered once. */
  register(name: string, init: InitFunction): void {
    if (!/^[a-z0-9][a-z0-9_-]*$/.test(name)) {
      throw driverError(GraphDriverErrorCode.INVALID_OPTION, `Invalid driver name ${JSON.stringify(name)}: use lower-case letters, digits, _ and -`);
    }
    if (this.#drivers.has(name)) {
      throw driverError(GraphDriverErrorCode.INVALID_OPTION, `Driver ${name} is already registered`);
    }
    this.#drivers.set(name, init);
  }

  /** Registered names, in registration order. */
  names(): string[] {
    return [...this.#drivers.keys()];
  }

  /** The order used when no driver is named. */
  get priority(): readonly string[] {
    return this.#priority;
  }

  /** Replaces the default priority. */
  setPriority(priority: readonly string[]): void {
    this.#priority = [...priority];
  }

  /** Initializes driver `name` or rejects with "No such driver". */
  async getDriver(name: string, root: string, config: DriverConfig = {}): Promise<Driver> {
    const init = this.#drivers.get(name);
    if (!init) {
      throw driverError(
        GraphDriverErrorCode.NO_SUCH_DRIVER,
        `No such driver: ${name}; registered drivers are ${this.names().join(', ') || '(none)'}`,
      );
    }
    debug('graphdriver: initializing %s in %s', name, root);
    return init(root, config);
  }

  /**
   * Picks and initializes a driver:
   * 1. `options.name`, else DOCKER_DRIVER when set and not empty: that driver
   *    or its error, with no fallback.
   * 2. A driver whose folder in `root` already holds state: that driver again.
   *    The state of several drivers is an error asking for a choice.
   * 3. The first driver in priority order whose init succeeds. Only a driver
   *    that reports "not supported" is skipped; any other failure is thrown.
   */
  async newDriver(root: string, options: NewDriverOptions = {}): Promise<Driver> {
    const { name, priority, env, ...config } = options;
    const chosen = name || (env ?? process.env)[DRIVER_ENV];
    if (chosen) return this.getDriver(chosen, root, config);

    const order = priority ?? this.#priority;
    const prior = this.priorDrivers(root, order);
    if (prior.length > 1) {
      throw driverError(
        GraphDriverErrorCode.AMBIGUOUS_PRIOR_STATE,
        `${root} contains state of several drivers (${prior.join(', ')}); name one with ${DRIVER_ENV} or remove the others`,
      );
    }
    if (prior.length === 1) {
      try {
        return await this.getDriver(prior[0], root, config);
      } catch (error) {
        throw withPrefix(error, `Prior storage driver ${prior[0]} failed in ${root}`);
      }
    }
    for (const candidate of order) {
      if (!this.#drivers.has(candidate)) continue;
      try {
        return await this.getDriver(candidate, root, config);
      } catch (error) {
        if (error instanceof DmError && error.code === GraphDriverErrorCode.NOT_SUPPORTED) {
          debug('graphdriver: %s is not supported here: %s', candidate, error.message);
          continue;
        }
        throw error;
      }
    }
    throw driverError(
      GraphDriverErrorCode.NOT_SUPPORTED,
      `No storage driver in ${order.join(', ')} is supported on this host; set ${DRIVER_ENV} to a registered driver`,
    );
  }

  /** Registered drivers whose folder in `root` exists and is not empty, in `order` then the rest. */
  priorDrivers(root: string, order: readonly string[] = this.#priority): string[] {
    const names = [...order.filter((n) => this.#drivers.has(n)), ...this.names().filter((n) => !order.includes(n))];
    return names.filter((driver) => {
      try {
        return fs.readdirSync(path.join(root, driver)).length > 0;
      } catch {
        return false;
      }
    });
  }
}

function withPrefix(error: unknown, prefix: string): unknown {
  if (!(error instanceof DmError)) return error;
  return new DmError(error.code, `${prefix}: ${error.message}`, {
    errno: error.errno,
    syscall: error.syscall,
    command: error.command,
    device: error.device,
    path: error.path,
    cause: error,
  });
}
