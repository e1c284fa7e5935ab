// Progress reporting interface of the engine. The CLI renders it (a bar on a
// terminal, a summary line otherwise, JSON lines for scripts).
#pragma once

#include <cstdint>
#include <string>

namespace vdisk {

class ProgressSink {
 public:
  virtual ~ProgressSink() = default;
  // A phase ("converting", "hashing", "verifying") of `total` bytes starts.
  virtual void begin(const std::string& phase, uint64_t total) = 0;
  // `done` bytes of the phase are complete (monotonic). Called from one thread.
  virtual void update(uint64_t done) = 0;
  // The phase ended (successfully or not).
  virtual void end() = 0;
};

}  // namespace vdisk
