#include "formats/core/error.h"

#include <cerrno>
#include <cstdio>
#include <cstring>

namespace vdisk {

const char* error_kind_name(ErrorKind kind) {
  switch (kind) {
    case ErrorKind::kNotThisFormat:
      return "not-this-format";
    case ErrorKind::kCorrupt:
      return "corrupt";
    case ErrorKind::kUnsupported:
      return "unsupported";
    case ErrorKind::kIo:
      return "io";
    case ErrorKind::kNotFound:
      return "not-found";
    case ErrorKind::kInvalidArgument:
      return "invalid-argument";
    case ErrorKind::kInterrupted:
      return "interrupted";
    case ErrorKind::kMismatch:
      return "mismatch";
  }
  return "unknown";
}

std::string format_error(const std::string& file, std::optional<uint64_t> offset,
                         const std::string& message) {
  std::string out;
  if (!file.empty()) out += file + ": ";
  if (offset) out += "at offset " + std::to_string(*offset) + ": ";
  out += message;
  return out;
}

Error::Error(ErrorKind kind, std::string file, std::optional<uint64_t> offset, std::string message)
    : std::runtime_error(format_error(file, offset, message)),
      kind_(kind),
      file_(std::move(file)),
      offset_(offset),
      message_(std::move(message)) {}

int Error::to_errno() const {
  switch (kind_) {
    case ErrorKind::kNotFound:
      return ENOENT;
    case ErrorKind::kInvalidArgument:
      return EINVAL;
    case ErrorKind::kUnsupported:
      return EOPNOTSUPP;
    case ErrorKind::kInterrupted:
      return EINTR;
    default:
      return EIO;
  }
}

void throw_corrupt(const std::string& file, uint64_t offset, const std::string& msg) {
  throw Error(ErrorKind::kCorrupt, file, offset, msg);
}
void throw_unsupported(const std::string& file, const std::string& msg) {
  throw Error(ErrorKind::kUnsupported, file, std::nullopt, msg);
}
void throw_invalid(const std::string& file, const std::string& msg) {
  throw Error(ErrorKind::kInvalidArgument, file, std::nullopt, msg);
}
void throw_errno(const std::string& file, std::optional<uint64_t> offset, const std::string& what,
                 int err) {
  ErrorKind kind = (err == ENOENT) ? ErrorKind::kNotFound : ErrorKind::kIo;
  throw Error(kind, file, offset, what + ": " + std::strerror(err));
}

uint64_t checked_mul(uint64_t a, uint64_t b, const std::string& file, uint64_t offset,
                     const std::string& what) {
  uint64_t r;
  if (__builtin_mul_overflow(a, b, &r)) {
    throw_corrupt(file, offset,
                  what + " overflows: " + std::to_string(a) + " * " + std::to_string(b));
  }
  return r;
}
uint64_t checked_add(uint64_t a, uint64_t b, const std::string& file, uint64_t offset,
                     const std::string& what) {
  uint64_t r;
  if (__builtin_add_overflow(a, b, &r)) {
    throw_corrupt(file, offset,
                  what + " overflows: " + std::to_string(a) + " + " + std::to_string(b));
  }
  return r;
}

std::string human_size(uint64_t bytes) {
  static const char* units[] = {"bytes", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
  if (bytes < 1024) return std::to_string(bytes) + " bytes";
  double v = static_cast<double>(bytes);
  int u = 0;
  while (v >= 1024 && u < 6) {
    v /= 1024;
    ++u;
  }
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.4g %s (%llu bytes)", v, units[u],
                static_cast<unsigned long long>(bytes));
  return buf;
}

}  // namespace vdisk
