// The koffi binding of the System V semaphore calls that udev cookies use
// (semget, semctl, semop), with the constants and struct layouts they need.
// Like libc.ts, each wrapper returns the call's result when it is not
// negative and `-errno` when it failed.

import { createRequire } from 'node:module';

/** The System V semaphore calls, as the udev cookie code uses them. */
export interface SysvSemaphores {
  /** semget(key, nsems, semflg). */
  semget(key: number, nsems: number, flags: number): number;
  /** semctl(semid, semnum, cmd, arg) for commands whose argument is an int or unused (SETVAL, GETVAL, IPC_RMID). */
  semctlInt(semid: number, semnum: number, cmd: number, arg: number): number;
  /** semctl(semid, semnum, cmd, buf) for commands that fill a struct (IPC_STAT, SEM_STAT, SEM_INFO). */
  semctlBuffer(semid: number, semnum: number, cmd: number, buf: Buffer): number;
  /** semop(semid, sops, nsops) with `sops` holding `nsops` packed `struct sembuf`. */
  semop(semid: number, sops: Buffer, count: number): number;
}

// sys/ipc.h (glibc bits/ipc.h, the same values as linux/ipc.h).
export const IPC_CREAT = 0o1000;
export const IPC_EXCL = 0o2000;
export const IPC_NOWAIT = 0o4000;
export const IPC_RMID = 0;
export const IPC_SET = 1;
export const IPC_STAT = 2;
export const IPC_INFO = 3;

// sys/sem.h (glibc bits/sem.h, the same values as linux/sem.h).
export const GETPID = 11;
export const GETVAL = 12;
export const GETALL = 13;
export const GETNCNT = 14;
export const GETZCNT = 15;
export const SETVAL = 16;
export const SETALL = 17;
export const SEM_STAT = 18;
export const SEM_INFO = 19;

/** `struct sembuf`: unsigned short sem_num, short sem_op, short sem_flg. */
export const SEMBUF_SIZE = 6;
export const SembufOffset = { sem_num: 0, sem_op: 2, sem_flg: 4 } as const;

/** `struct seminfo`: ten ints; SEM_INFO puts the number of sets in use in semusz. */
export const SEMINFO_SIZE = 40;
export const SeminfoOffset = {
  semmap: 0,
  semmni: 4,
  semmns: 8,
  semmnu: 12,
  semmsl: 16,
  semopm: 20,
  semume: 24,
  semusz: 28,
  semvmx: 32,
  semaem: 36,
} as const;

/**
 * Offsets in glibc's `struct semid_ds` on 64-bit Linux. `sem_perm.__key`
 * comes first everywhere; the times differ because x86-64 keeps a padding
 * word after each of them (bits/types/struct_semid_ds.h) and the generic
 * layout that arm64 uses does not.
 */
export interface SemidDsLayout {
  key: number;
  otime: number;
  ctime: number;
  nsems: number;
}

const SEMID_DS_LAYOUTS: Readonly<Record<string, SemidDsLayout>> = {
  // Checked against /proc/sysvipc/sem by test/unit/udev-sysv.test.ts.
  x64: { key: 0, otime: 48, ctime: 64, nsems: 80 },
  // NOTE: read from glibc's generic header, not measured on an arm64 machine.
  arm64: { key: 0, otime: 48, ctime: 56, nsems: 64 },
};

/** Bytes to allocate for a `struct semid_ds`; both layouts above fit. */
export const SEMID_DS_BUFFER_SIZE = 128;

/** The `struct semid_ds` layout of this process's architecture, or undefined when the library does not know it. */
export function semidDsLayout(arch: string = process.arch): SemidDsLayout | undefined {
  return SEMID_DS_LAYOUTS[arch];
}

/** One semaphore operation on semaphore `num` of a set. */
export interface SemaphoreOperation {
  num: number;
  op: number;
  flags?: number;
}

/** Packs operations as an array of `struct sembuf`. */
export function encodeSembufs(operations: readonly SemaphoreOperation[]): Buffer {
  const buf = Buffer.alloc(operations.length * SEMBUF_SIZE);
  operations.forEach((operation, index) => {
    const base = index * SEMBUF_SIZE;
    buf.writeUInt16LE(operation.num, base + SembufOffset.sem_num);
    buf.writeInt16LE(operation.op, base + SembufOffset.sem_op);
    buf.writeInt16LE(operation.flags ?? 0, base + SembufOffset.sem_flg);
  });
  return buf;
}

interface KoffiModule {
  load(path: string): { func(signature: string): (...args: unknown[]) => number };
  errno(): number;
}

let loaded: SysvSemaphores | undefined;

/** Loads the semaphore calls of libc through koffi once and returns the binding. */
export function sysv(): SysvSemaphores {
  if (loaded) return loaded;
  const require = createRequire(import.meta.url);
  const koffi = require('koffi') as KoffiModule;
  const lib = koffi.load('libc.so.6');
  const semget = lib.func('int semget(int key, int nsems, int semflg)');
  // semctl is variadic in C, with a `union semun` as its fourth argument.
  // Two fixed prototypes pass that union as what it holds: an int (SETVAL)
  // or a pointer (the struct commands). On x86-64 and arm64 Linux both go in
  // the same integer register a variadic callee reads them from, the same
  // reasoning that lets libc.ts declare the variadic ioctl with a fixed prototype.
  const semctlInt = lib.func('int semctl(int semid, int semnum, int cmd, int arg)');
  const semctlBuffer = lib.func('int semctl(int semid, int semnum, int cmd, _Inout_ void *buf)');
  const semop = lib.func('int semop(int semid, const void *sops, unsigned long nsops)');
  const check = (result: number): number => (result < 0 ? -koffi.errno() : result);
  loaded = {
    semget: (key, nsems, flags) => check(semget(key, nsems, flags)),
    semctlInt: (semid, semnum, cmd, arg) => check(semctlInt(semid, semnum, cmd, arg)),
    semctlBuffer: (semid, semnum, cmd, buf) => check(semctlBuffer(semid, semnum, cmd, buf)),
    semop: (semid, sops, count) => check(semop(semid, sops, count)),
  };
  return loaded;
}
