// An LD_PRELOAD library that records the device-mapper ioctls a program
// makes, for comparing libdevmapper's requests with this library's.
//
// Build: gcc -shared -fPIC -O2 -o capture.so capture.c -ldl
// Use:   DM_IOCTL_CAPTURE=/tmp/calls.txt LD_PRELOAD=./capture.so dmsetup info NAME
//
// For each ioctl whose request type is DM_IOCTL (0xfd) it appends two lines
// to the file the environment variable DM_IOCTL_CAPTURE names:
//   in REQUEST DATA_SIZE HEX       the whole buffer (data_size bytes) before the call
//   out REQUEST RESULT ERRNO HEX   the header and payload up to the reply's data_size
// REQUEST is the ioctl request number in hex and HEX the buffer bytes in hex.
// Other ioctls pass through unrecorded.

#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

// include/uapi/linux/dm-ioctl.h
#define DM_IOCTL 0xfd
#define DM_IOCTL_SIZE 312
#define DM_DATA_SIZE_OFFSET 12

// asm-generic/ioctl.h: bits 8..15 of a request number carry its type.
#define IOC_TYPE(request) (((request) >> 8) & 0xff)

typedef int (*ioctl_function)(int, unsigned long, void *);

static uint32_t read_u32(const unsigned char *buf, size_t offset) {
  uint32_t value;
  memcpy(&value, buf + offset, sizeof(value));
  return value;
}

static void write_line(const char *prefix, unsigned long request, long long first, long long second, int has_second,
                       const unsigned char *buf, size_t length) {
  const char *path = getenv("DM_IOCTL_CAPTURE");
  if (path == NULL) return;
  FILE *out = fopen(path, "a");
  if (out == NULL) return;
  if (has_second) {
    fprintf(out, "%s %lx %lld %lld ", prefix, request, first, second);
  } else {
    fprintf(out, "%s %lx %lld ", prefix, request, first);
  }
  for (size_t i = 0; i < length; i++) fprintf(out, "%02x", buf[i]);
  fputc('\n', out);
  fclose(out);
}

int ioctl(int fd, unsigned long request, ...) {
  static ioctl_function real_ioctl;
  if (real_ioctl == NULL) real_ioctl = (ioctl_function)dlsym(RTLD_NEXT, "ioctl");

  va_list arguments;
  va_start(arguments, request);
  void *argument = va_arg(arguments, void *);
  va_end(arguments);

  if (IOC_TYPE(request) != DM_IOCTL || argument == NULL) return real_ioctl(fd, request, argument);

  const unsigned char *buf = argument;
  uint32_t data_size = read_u32(buf, DM_DATA_SIZE_OFFSET);
  write_line("in", request, data_size, 0, 0, buf, data_size);

  int result = real_ioctl(fd, request, argument);
  int saved_errno = errno;

  // A successful reply fills the buffer up to its new data_size. A failed
  // one is kept too, because its header shows what the kernel rejected.
  uint32_t reply_size = read_u32(buf, DM_DATA_SIZE_OFFSET);
  size_t length = reply_size < DM_IOCTL_SIZE ? DM_IOCTL_SIZE : reply_size;
  if (length > data_size) length = data_size;
  write_line("out", request, result, result < 0 ? saved_errno : 0, 1, buf, length);

  errno = saved_errno;
  return result;
}
