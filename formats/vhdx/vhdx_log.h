// In-memory replay of a VHDX log (MS-VHDX 2.3.3). When an image was not
// closed cleanly its header names a LogGuid and the log region holds entries
// whose updates (metadata, BAT, payload sectors) may be missing from the file.
// We replay them into an overlay and read the whole file through it; the
// source file is never written. The writing side (write_through_log) is for
// the commands that change an image in place (vdisk resize, rebase,
// commit).
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "formats/core/file.h"
#include "formats/vhdx/vhdx_layout.h"

namespace vdisk::vhdx {

// What replay found, for `info`.
struct LogReplayResult {
  uint64_t entries_applied = 0;
  uint64_t data_sectors = 0;   // 4 KiB sectors written by data descriptors
  uint64_t zero_bytes = 0;     // bytes zeroed by zero descriptors
  uint64_t head_sequence = 0;  // sequence number of the newest applied entry
  uint64_t last_file_offset = 0;
};

// Replayed bytes over file offsets: an ordered map of non-overlapping pieces,
// each either bytes (4 KiB from a data descriptor) or zeros (a zero
// descriptor of any length, held without allocating it). Later entries
// replace earlier ones. Immutable once built, so safe to read from any thread.
class LogOverlay {
 public:
  // [offset, offset + len) becomes `data` (len bytes) or zeros when null.
  void put(uint64_t offset, uint64_t len, std::shared_ptr<const std::vector<uint8_t>> data);
  // Copies every replayed byte that falls in [offset, offset + len) into buf.
  void apply(uint64_t offset, uint8_t* buf, size_t len) const;
  bool intersects(uint64_t offset, uint64_t len) const;
  // One past the last replayed byte (0 when empty).
  uint64_t end() const;
  bool empty() const { return pieces_.empty(); }

 private:
  struct Piece {
    uint64_t len = 0;
    std::shared_ptr<const std::vector<uint8_t>> data;  // null: zeros
    uint64_t data_off = 0;
  };
  std::map<uint64_t, Piece> pieces_;  // keyed by file offset
};

// A File that reads as the source file with the log replayed on top: bytes
// past the source's end up to size() read as zeros (the log may extend the
// file to LastFileOffset). Thread-safe like any File.
class ReplayedFile final : public File {
 public:
  ReplayedFile(std::shared_ptr<const File> base, LogOverlay overlay, uint64_t size);
  const std::string& path() const override { return base_->path(); }
  uint64_t size() const override { return size_; }
  void read_at(uint64_t offset, void* buf, size_t len) const override;
  size_t read_some(uint64_t offset, void* buf, size_t len) const override;
  FileRange range_status(uint64_t offset, uint64_t len) const override;
  uint64_t allocated_on_host() const override { return base_->allocated_on_host(); }
  std::pair<uint64_t, uint64_t> identity() const override { return base_->identity(); }

 private:
  std::shared_ptr<const File> base_;
  LogOverlay overlay_;
  uint64_t size_;
};

// Finds the active sequence of the log at [log_offset, log_offset +
// log_length) of `file` whose entries carry `log_guid`, and replays it.
// Returns the file to read everything else through (a ReplayedFile, or `file`
// itself when no entry applies, with result->entries_applied == 0). Throws
// Error(kCorrupt) when the log region lies outside the file or the file is
// shorter than the head entry's FlushedFileOffset (data the log says was
// flushed is missing).
std::shared_ptr<const File> replay_log(std::shared_ptr<const File> file, uint64_t log_offset,
                                       uint64_t log_length, const Guid& log_guid,
                                       LogReplayResult* result);

// New contents of whole 4 KiB sectors of the file, by 4 KiB-aligned offset.
using SectorUpdates = std::map<uint64_t, std::vector<uint8_t>>;

// Byte changes to a file gathered as whole 4 KiB sectors (each read from
// the file when first touched), for write_through_log.
class SectorChanges {
 public:
  explicit SectorChanges(const File& file) : file_(file) {}
  // [offset, offset + n) of the file becomes `bytes`.
  void put(uint64_t offset, const uint8_t* bytes, size_t n);
  // [offset, offset + n) of the file becomes zeros.
  void zero(uint64_t offset, uint64_t n);
  // The touched sectors whose new bytes differ from the file's.
  SectorUpdates updates() const;

 private:
  const File& file_;
  SectorUpdates sectors_;
};

// The bytes of the log entry encode_log_entry makes for `n` sectors.
uint64_t log_entry_length(uint64_t n);

// One log entry (2.2.4, 2.3.1) carrying `updates` as data descriptors and
// their data sectors, at log position 0 with Tail 0: a sequence of its own.
// Its length is (1 + descriptor sectors + updates) * 4 KiB.
std::vector<uint8_t> encode_log_entry(const Guid& log_guid, uint64_t sequence,
                                      const SectorUpdates& updates, uint64_t flushed_file_offset,
                                      uint64_t last_file_offset);

// Writes `updates` into the VHDX in `file` as MS-VHDX 2.3 requires of
// metadata changes: the log entry into the log region, sync; the header
// update procedure (2.2.2.1: the non-current header rewritten with the
// sequence number + 1, a new FileWriteGuid and the entry's LogGuid), sync;
// the sectors written in place, sync; the other header with sequence + 2
// and LogGuid zero, sync. A crash at any point leaves a file that opens (a
// reader replaying the log as 2.3.3 says) either as before or with every
// update. `log_guid` and `file_write_guid` are fresh GUIDs. Refuses (Error
// kUnsupported) an entry larger than the log region, a header with a log
// pending, or headers it cannot read. Call only on a file opened and
// validated as VHDX.
void write_through_log(UpdateFile& file, const SectorUpdates& updates, const Guid& log_guid,
                       const Guid& file_write_guid);

// The header update procedure of 2.2.2.1 on its own: the non-current header
// rewritten from the current one with the sequence number + 1,
// `file_write_guid` and `data_write_guid` (2.2.2: a new DataWriteGuid before
// the first change to the disk's user-visible data), then synced; it is the
// current header from then on. Refuses what write_through_log refuses.
void write_header_guids(UpdateFile& file, const Guid& file_write_guid, const Guid& data_write_guid);

}  // namespace vdisk::vhdx
