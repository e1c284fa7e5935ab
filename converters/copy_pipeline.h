// The engine of copy_device: a planner, an ordered pool of reader threads,
// and consumers fed in order.
//
//   CopyPlanner --chunks--> N reader threads --in plan order--> consumer 1
//   (block status)          (ChunkReader: read,                 consumer 2 ...
//                            rescue, zero runs)                 (one thread each)
//
// Readers take chunks from the planner one at a time and read them
// concurrently; a finished chunk waits until every chunk planned before it
// has been handed on, so every consumer sees the guest stream in order. A
// chunk is shared by all consumers and released (its buffer back to the pool)
// when the last one is done with it.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <span>

#include "converters/chunk_reader.h"
#include "converters/copy_plan.h"

namespace vdisk {

// A stage fed every chunk of the guest stream.
class ChunkConsumer {
 public:
  virtual ~ChunkConsumer() = default;
  // Called once per chunk, in plan (increasing offset) order, always from the
  // same thread, which is this consumer's own. An exception stops the whole
  // pipeline; run_copy_pipeline rethrows the first one.
  virtual void consume(const Chunk& c) = 0;
};

struct PipelineOptions {
  // Reader threads (the calling thread is one of them). With 1, chunks are
  // read strictly in order, one after the other (standard input).
  size_t readers = 2;
  // Read buffers of chunk_size bytes each: the memory bound, whatever the
  // image size. Raised to readers + 1 so every reader can hold one while a
  // consumer holds another.
  size_t buffers = 8;
  // Size of a read buffer; at least the planner's chunk_size.
  size_t chunk_size = 4 << 20;
  // Chunks planned and not yet released by every consumer, zero chunks
  // included: they own no buffer, so without this bound the readers would
  // race through a sparse disk far ahead of the hashers (and progress would
  // say 100% long before the end).
  size_t max_in_flight = 64;
  // Set from a signal handler; checked before each chunk is planned, read
  // (ReadRescuer: before each retry) and consumed.
  const std::atomic<bool>* cancel = nullptr;
};

struct PipelineStats {
  uint64_t bytes_read = 0;  // lengths of the chunks read from the source
};

// Plans, reads and hands on every chunk of the planner to every consumer.
// Returns when all consumers have seen the last chunk. On the first error of
// any stage (planner, reader, consumer, or Error(kInterrupted) once *cancel
// is set) every other stage stops at its next chunk (threads waiting for a
// buffer, a slot or a chunk are woken), all threads are joined, and that
// error is rethrown.
PipelineStats run_copy_pipeline(CopyPlanner& planner, const ChunkReader& reader,
                                std::span<ChunkConsumer* const> consumers,
                                const PipelineOptions& opts);

}  // namespace vdisk
