// The C peer of bench/inside.mjs: the same device-mapper ioctls the library
// makes, issued directly, so the benchmark can report the library's cost as
// a ratio. It is a test-only tool; bench/run.mjs compiles it with gcc.
//
// Usage:
//   dmbench info NAME ITERATIONS          DM_DEV_STATUS on NAME in a loop
//   dmbench cycle PREFIX COUNT            create, load (zero), resume, remove COUNT devices
//   dmbench create PREFIX FIRST COUNT     create devices PREFIXFIRST.. without tables
//   dmbench list ITERATIONS               DM_LIST_DEVICES in a loop, walking every record
//   dmbench remove-all                    DM_REMOVE_ALL
// Each mode prints one line: "ns=TOTAL_NANOSECONDS count=N".

#include <errno.h>
#include <fcntl.h>
#include <linux/dm-ioctl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

// libdm's and the library's first buffer size for replies that can grow.
#define INITIAL_BUFFER_SIZE (16 * 1024)
// Room for one target spec with a short parameter string after the header.
#define LOAD_BUFFER_SIZE (sizeof(struct dm_ioctl) + sizeof(struct dm_target_spec) + 8)
#define ZERO_TARGET_SECTORS 8

static int control_fd;

static uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void fail(const char *operation, const char *name) {
  fprintf(stderr, "dmbench: %s %s failed: %s\n", operation, name, strerror(errno));
  exit(1);
}

// Fills the header of a request as the library does: the command's minimum
// version, the buffer size, the payload offset and the device name.
static void init_header(struct dm_ioctl *io, size_t size, const char *name) {
  memset(io, 0, sizeof(*io));
  io->version[0] = DM_VERSION_MAJOR;
  io->data_size = (uint32_t)size;
  io->data_start = sizeof(struct dm_ioctl);
  // The header was zeroed, so copying at most DM_NAME_LEN - 1 bytes leaves the NUL.
  if (name != NULL) memcpy(io->name, name, strnlen(name, sizeof(io->name) - 1));
}

static void run(unsigned long request, struct dm_ioctl *io, const char *operation) {
  if (ioctl(control_fd, request, io) < 0) fail(operation, io->name);
}

static void simple(unsigned long request, const char *name, uint32_t flags, const char *operation) {
  struct dm_ioctl io;
  init_header(&io, sizeof(io), name);
  io.flags = flags;
  run(request, &io, operation);
}

static void load_zero(const char *name) {
  union {
    unsigned char bytes[LOAD_BUFFER_SIZE];
    struct dm_ioctl io;
  } buf;
  memset(buf.bytes, 0, sizeof(buf.bytes));
  init_header(&buf.io, sizeof(buf.bytes), name);
  buf.io.target_count = 1;
  struct dm_target_spec *spec = (struct dm_target_spec *)(buf.bytes + sizeof(struct dm_ioctl));
  spec->sector_start = 0;
  spec->length = ZERO_TARGET_SECTORS;
  spec->next = sizeof(struct dm_target_spec) + 8;
  strcpy(spec->target_type, "zero");
  run(DM_TABLE_LOAD, &buf.io, "DM_TABLE_LOAD");
}

static uint64_t mode_info(const char *name, long iterations) {
  struct dm_ioctl io;
  uint64_t start = now_ns();
  for (long i = 0; i < iterations; i++) {
    init_header(&io, sizeof(io), name);
    run(DM_DEV_STATUS, &io, "DM_DEV_STATUS");
  }
  return now_ns() - start;
}

static uint64_t mode_cycle(const char *prefix, long count) {
  char name[DM_NAME_LEN];
  uint64_t start = now_ns();
  for (long i = 0; i < count; i++) {
    snprintf(name, sizeof(name), "%s%ld", prefix, i);
    simple(DM_DEV_CREATE, name, 0, "DM_DEV_CREATE");
    load_zero(name);
    simple(DM_DEV_SUSPEND, name, 0, "DM_DEV_SUSPEND");
    simple(DM_DEV_REMOVE, name, 0, "DM_DEV_REMOVE");
  }
  return now_ns() - start;
}

static uint64_t mode_create(const char *prefix, long first, long count) {
  char name[DM_NAME_LEN];
  uint64_t start = now_ns();
  for (long i = first; i < first + count; i++) {
    snprintf(name, sizeof(name), "%s%ld", prefix, i);
    simple(DM_DEV_CREATE, name, 0, "DM_DEV_CREATE");
  }
  return now_ns() - start;
}

// Lists the devices as libdm does: a 16 KiB buffer first, doubled while the
// kernel sets DM_BUFFER_FULL_FLAG. Returns the number of records walked.
static long list_once(void) {
  size_t size = INITIAL_BUFFER_SIZE;
  for (;;) {
    struct dm_ioctl *io = calloc(1, size);
    if (io == NULL) fail("calloc", "");
    init_header(io, size, NULL);
    io->flags = DM_UUID_FLAG;
    run(DM_LIST_DEVICES, io, "DM_LIST_DEVICES");
    if (io->flags & DM_BUFFER_FULL_FLAG) {
      free(io);
      size *= 2;
      continue;
    }
    long records = 0;
    struct dm_name_list *entry = (struct dm_name_list *)((char *)io + io->data_start);
    if (entry->dev != 0) {
      for (;;) {
        records += entry->name[0] != '\0';
        if (entry->next == 0) break;
        entry = (struct dm_name_list *)((char *)entry + entry->next);
      }
    }
    free(io);
    return records;
  }
}

int main(int argc, char **argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: dmbench info|cycle|create|list|remove-all ...\n");
    return 2;
  }
  control_fd = open("/dev/mapper/control", O_RDWR);
  if (control_fd < 0) fail("open", "/dev/mapper/control");
  const char *mode = argv[1];
  uint64_t ns;
  long count;
  if (strcmp(mode, "info") == 0 && argc == 4) {
    count = atol(argv[3]);
    ns = mode_info(argv[2], count);
  } else if (strcmp(mode, "cycle") == 0 && argc == 4) {
    count = atol(argv[3]);
    ns = mode_cycle(argv[2], count);
  } else if (strcmp(mode, "create") == 0 && argc == 5) {
    count = atol(argv[4]);
    ns = mode_create(argv[2], atol(argv[3]), count);
  } else if (strcmp(mode, "list") == 0 && argc == 3) {
    count = atol(argv[2]);
    long records = 0;
    uint64_t start = now_ns();
    for (long i = 0; i < count; i++) records = list_once();
    ns = now_ns() - start;
    printf("records=%ld ", records);
  } else if (strcmp(mode, "remove-all") == 0) {
    count = 1;
    uint64_t start = now_ns();
    simple(DM_REMOVE_ALL, NULL, 0, "DM_REMOVE_ALL");
    ns = now_ns() - start;
  } else {
    fprintf(stderr, "dmbench: invalid arguments for %s\n", mode);
    return 2;
  }
  printf("ns=%llu count=%ld\n", (unsigned long long)ns, count);
  return 0;
}
