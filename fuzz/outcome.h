// What became of one fuzz input, in a form a test can assert on: accepted,
// refused with a vdisk::Error of some kind (bad input, as expected), or a
// broken promise of vdisk's own (a bug). The libFuzzer entry points abort on
// the last; the tests that replay inputs check all three.
#pragma once

#include <cstdio>
#include <cstdlib>
#include <stdexcept>
#include <string>

#include "formats/core/error.h"

namespace vdisk::fuzz {

// A broken promise: a bug in vdisk, never a property of the input.
// Deliberately not a vdisk::Error, so that no handler of bad input swallows it.
class ContractViolation : public std::logic_error {
 public:
  using std::logic_error::logic_error;
};

struct Outcome {
  enum class Status {
    kAccepted,   // read, and every check passed
    kRefused,    // a vdisk::Error, at open or while being read: bad input
    kViolation,  // a ContractViolation: a bug
  };
  Status status = Status::kAccepted;
  ErrorKind error_kind = ErrorKind::kCorrupt;  // when kRefused
  std::string message;                         // the error or the violation

  bool accepted() const { return status == Status::kAccepted; }
  bool refused() const { return status == Status::kRefused; }
  bool refused(ErrorKind kind) const { return refused() && error_kind == kind; }
  bool violation() const { return status == Status::kViolation; }
  // "accepted", "refused corrupt: MESSAGE", "VIOLATION: MESSAGE".
  std::string describe() const {
    switch (status) {
      case Status::kAccepted:
        return "accepted";
      case Status::kRefused:
        return std::string("refused ") + error_kind_name(error_kind) + ": " + message;
      case Status::kViolation:
        break;
    }
    return "VIOLATION: " + message;
  }
};

// Runs `exercise` and turns what it threw into an Outcome. Anything other
// than a vdisk::Error or a ContractViolation (std::bad_alloc, a standard
// library logic_error) propagates: the fuzzer reports it as a crash.
template <typename F>
Outcome judge(F&& exercise) {
  try {
    exercise();
    return {};
  } catch (const ContractViolation& v) {
    return {Outcome::Status::kViolation, ErrorKind::kCorrupt, v.what()};
  } catch (const Error& e) {
    return {Outcome::Status::kRefused, e.kind(), e.what()};
  }
}

// The libFuzzer entry points' verdict: aborts on a violation so that the
// fuzzer reports it with its input; 0 otherwise.
inline int fuzzer_verdict(const char* target, const Outcome& o) {
  if (o.violation()) {
    std::fprintf(stderr, "fuzz target %s: %s\n", target, o.describe().c_str());
    std::abort();
  }
  return 0;
}

}  // namespace vdisk::fuzz
