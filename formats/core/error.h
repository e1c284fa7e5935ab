// Errors with context. Every failure a user can see names the file, the byte
// offset (when one applies) and what is wrong, with both values where a field
// does not match ("VDI block size 65536 is not 1048576").
#pragma once

#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>

namespace vdisk {

// Kinds are kept apart on purpose: "not this format" lets a probe or a caller
// try something else; "corrupt" means the bytes break the format's rules;
// "unsupported" means valid but beyond what vdisk implements.
enum class ErrorKind {
  kNotThisFormat,    // the bytes are not this format at all
  kCorrupt,          // this format, but damaged or inconsistent
  kUnsupported,      // valid, but a feature vdisk does not implement
  kIo,               // the OS failed a read/write/open (errno in the message)
  kNotFound,         // a file (parent, extent, path inside an image) is missing
  kInvalidArgument,  // the caller (usually the user) asked for something invalid
  kInterrupted,      // cancelled by a signal or the user
  kMismatch,         // a verification found different content
};

const char* error_kind_name(ErrorKind kind);

class Error : public std::runtime_error {
 public:
  // `file` may be empty when no file is involved; `offset` is a byte offset in
  // that file.
  Error(ErrorKind kind, std::string file, std::optional<uint64_t> offset, std::string message);

  ErrorKind kind() const { return kind_; }
  const std::string& file() const { return file_; }
  const std::optional<uint64_t>& offset() const { return offset_; }
  const std::string& message() const { return message_; }
  // errno to report through FUSE and similar C interfaces.
  int to_errno() const;

 private:
  ErrorKind kind_;
  std::string file_;
  std::optional<uint64_t> offset_;
  std::string message_;
};

// Builds "FILE: at offset N: MESSAGE" (parts omitted when absent).
std::string format_error(const std::string& file, std::optional<uint64_t> offset,
                         const std::string& message);

// Shorthands for the common kinds.
[[noreturn]] void throw_corrupt(const std::string& file, uint64_t offset, const std::string& msg);
[[noreturn]] void throw_unsupported(const std::string& file, const std::string& msg);
[[noreturn]] void throw_invalid(const std::string& file, const std::string& msg);
// Throws kIo with strerror(err) appended to `what`.
[[noreturn]] void throw_errno(const std::string& file, std::optional<uint64_t> offset,
                              const std::string& what, int err);

// Overflow-checked arithmetic for sizes taken from headers. They throw kCorrupt
// naming `file`, `offset` and `what` when the result does not fit in 64 bits.
uint64_t checked_mul(uint64_t a, uint64_t b, const std::string& file, uint64_t offset,
                     const std::string& what);
uint64_t checked_add(uint64_t a, uint64_t b, const std::string& file, uint64_t offset,
                     const std::string& what);

// Rounding helpers (alignment must be non-zero).
inline uint64_t div_round_up(uint64_t v, uint64_t a) {
  return v / a + (v % a != 0);
}
inline uint64_t align_down(uint64_t v, uint64_t a) {
  return v - v % a;
}
inline uint64_t align_up(uint64_t v, uint64_t a) {
  return div_round_up(v, a) * a;
}

// "1.5 GiB (1610612736 bytes)"-style rendering used in messages.
std::string human_size(uint64_t bytes);

}  // namespace vdisk
