#include "converters/convert.h"

#include <chrono>
#include <cstring>
#include <optional>

#include "converters/chunk_reader.h"
#include "converters/copy_consumers.h"
#include "converters/copy_pipeline.h"
#include "converters/copy_plan.h"
#include "formats/core/error.h"

namespace vdisk {

CopyResult copy_device(const BlockDevice& src, ImageWriter* dst, const CopyOptions& opts) {
  const auto t0 = std::chrono::steady_clock::now();
  CopyResult result;
  const uint64_t size = src.size();
  result.virtual_size = size;
  result.unreadable_bytes = check_unreadable_ranges(opts.unreadable, size);
  const bool hashing = !opts.algos.empty();
  const bool rescue = opts.on_read_error == OnReadError::kContinue;
  const size_t chunk_size = std::max<size_t>(opts.chunk_size, 4096);

  PlanOptions plan;
  plan.chunk_size = chunk_size;
  // Zero chunks are cut at 64 MiB when hashing (hashing zeros costs time:
  // keeps progress honest), at 1 GiB otherwise (a 2 TiB sparse disk is then
  // 2048 writer calls).
  plan.max_zero_chunk = hashing ? uint64_t{64} << 20 : uint64_t{1} << 30;
  plan.unreadable = opts.unreadable;
  // The bytes stored in unreadable ranges are read only when a hash of the
  // source as stored needs them.
  plan.read_unreadable = hashing;
  plan.status_errors_as_data = rescue;
  CopyPlanner planner(src, plan);

  ChunkReader::Options read;
  read.on_read_error = opts.on_read_error;
  read.read_error_hint = opts.read_error_hint;
  read.cancel = opts.cancel;
  read.zero_granularity = dst ? std::max<size_t>(opts.zero_granularity, 1) : 0;
  ChunkReader reader(src, read);

  // Consumers: each algorithm over the source as stored, and again with the
  // unreadable ranges as zeros when there are any; the writer; progress; the
  // read errors.
  std::vector<std::unique_ptr<HashConsumer>> as_stored, zero_filled;
  for (HashAlgo a : opts.algos) as_stored.push_back(std::make_unique<HashConsumer>(a, false));
  if (!opts.unreadable.empty()) {
    for (HashAlgo a : opts.algos) zero_filled.push_back(std::make_unique<HashConsumer>(a, true));
  }
  std::optional<WriterConsumer> writer;
  if (dst) writer.emplace(*dst);
  std::optional<ProgressConsumer> progress;
  if (opts.progress) progress.emplace(*opts.progress);
  std::optional<ReadErrorCollector> errors;
  if (rescue) errors.emplace();
  std::vector<ChunkConsumer*> consumers;
  for (auto& h : as_stored) consumers.push_back(h.get());
  for (auto& h : zero_filled) consumers.push_back(h.get());
  if (writer) consumers.push_back(&*writer);
  if (progress) consumers.push_back(&*progress);
  if (errors) consumers.push_back(&*errors);

  PipelineOptions run;
  run.readers = opts.readers;
  run.buffers = opts.buffers;
  run.chunk_size = chunk_size;
  run.cancel = opts.cancel;
  PipelineStats stats;
  if (opts.progress) opts.progress->begin(opts.phase, size);
  try {
    stats = run_copy_pipeline(planner, reader, consumers, run);
  } catch (...) {
    if (opts.progress) opts.progress->end();
    throw;
  }
  if (opts.progress) opts.progress->end();

  result.data_bytes_read = stats.bytes_read;
  if (writer) {
    result.bytes_written = writer->bytes_written();
    result.zero_bytes = writer->zero_bytes();
  }
  if (errors) result.read_errors = errors->take();
  for (const ByteRange& b : result.read_errors) result.read_error_bytes += b.length;
  // The hashers fed the rescuer's zeros for read errors: the "as stored"
  // hashes then hold the source with those ranges as zeros (its stored bytes
  // are unknown), which is a zero-filled hash when there are no unreadable
  // ranges to zero-fill besides.
  const bool lost = !result.read_errors.empty();
  // The output's content: zero-filled where unreadable, then the zeros of a
  // size rounded up by the writer.
  const uint64_t pad = dst && dst->virtual_size() > size ? dst->virtual_size() - size : 0;
  for (size_t i = 0; i < opts.algos.size(); ++i) {
    Hasher& stored = as_stored[i]->hasher();
    Hasher* zeroed = zero_filled.empty() ? nullptr : &zero_filled[i]->hasher();
    if (dst) {
      std::unique_ptr<Hasher> out = (zeroed ? *zeroed : stored).clone();
      out->update_zeros(pad);
      result.output_hashes.push_back({opts.algos[i], out->finish_hex()});
    }
    if (!lost) result.hashes.push_back({opts.algos[i], stored.finish_hex()});
    if (zeroed)
      result.hashes_zero_filled.push_back({opts.algos[i], zeroed->finish_hex()});
    else if (lost)
      result.hashes_zero_filled.push_back({opts.algos[i], stored.finish_hex()});
  }
  result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return result;
}

CompareResult compare_devices(const BlockDevice& a, const BlockDevice& b, ProgressSink* progress,
                              const std::atomic<bool>* cancel) {
  CompareResult r;
  r.size_a = a.size();
  r.size_b = b.size();
  r.size_differs = r.size_a != r.size_b;
  const uint64_t common = std::min(r.size_a, r.size_b);
  const size_t chunk = 4 << 20;
  std::vector<uint8_t> ba(chunk), bb(chunk);
  if (progress) progress->begin("comparing", common);
  uint64_t off = 0;
  while (off < common) {
    if (cancel && cancel->load()) throw Error(ErrorKind::kInterrupted, "", off, "interrupted");
    Extent ea = a.block_status(off, common - off);
    Extent eb = b.block_status(off, common - off);
    uint64_t len = std::min({ea.length ? ea.length : 1, eb.length ? eb.length : 1, common - off});
    if (ea.type != ExtentType::kData && eb.type != ExtentType::kData) {
      off += len;
      if (progress) progress->update(off);
      continue;
    }
    len = std::min<uint64_t>(len, chunk);
    a.read(off, ba.data(), static_cast<size_t>(len));
    b.read(off, bb.data(), static_cast<size_t>(len));
    if (std::memcmp(ba.data(), bb.data(), static_cast<size_t>(len)) != 0) {
      for (uint64_t i = 0; i < len; ++i) {
        if (ba[i] != bb[i]) {
          r.first_difference = off + i;
          break;
        }
      }
      if (progress) progress->end();
      return r;
    }
    off += len;
    if (progress) progress->update(off);
  }
  if (r.size_differs) {
    const BlockDevice& big = r.size_a > r.size_b ? a : b;
    const uint64_t end = big.size();
    while (off < end && !r.first_nonzero_extra) {
      if (cancel && cancel->load()) throw Error(ErrorKind::kInterrupted, "", off, "interrupted");
      Extent e = big.block_status(off, end - off);
      uint64_t len = std::min(e.length ? e.length : 1, end - off);
      if (e.type == ExtentType::kData) {
        len = std::min<uint64_t>(len, chunk);
        big.read(off, ba.data(), static_cast<size_t>(len));
        for (uint64_t i = 0; i < len; ++i) {
          if (ba[i] != 0) {
            r.first_nonzero_extra = off + i;
            break;
          }
        }
      }
      off += len;
    }
  }
  if (progress) progress->end();
  r.identical = !r.size_differs;
  return r;
}

}  // namespace vdisk
