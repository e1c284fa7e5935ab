#include "formats/vhdx/vhdx_log.h"

#include <algorithm>
#include <cstring>
#include <unordered_map>

#include "formats/core/endian.h"
#include "formats/core/error.h"
#include "formats/vhdx/vhdx_crc32c.h"

namespace vdisk::vhdx {

void LogOverlay::put(uint64_t offset, uint64_t len,
                     std::shared_ptr<const std::vector<uint8_t>> data) {
  if (len == 0) return;
  const uint64_t end = offset + len;
  auto split_tail = [&](uint64_t piece_start, const Piece& p) {
    // The part of `p` past `end` survives as its own piece.
    uint64_t piece_end = piece_start + p.len;
    if (piece_end <= end) return;
    Piece t = p;
    t.data_off += end - piece_start;
    t.len = piece_end - end;
    pieces_[end] = t;
  };
  auto it = pieces_.lower_bound(offset);
  if (it != pieces_.begin()) {
    auto prev = std::prev(it);
    if (prev->first + prev->second.len > offset) {
      Piece p = prev->second;
      prev->second.len = offset - prev->first;
      split_tail(prev->first, p);
    }
  }
  it = pieces_.lower_bound(offset);
  while (it != pieces_.end() && it->first < end) {
    uint64_t start = it->first;
    Piece p = it->second;
    it = pieces_.erase(it);
    if (start + p.len > end) {
      split_tail(start, p);
      break;
    }
  }
  pieces_[offset] = Piece{len, std::move(data), 0};
}

void LogOverlay::apply(uint64_t offset, uint8_t* buf, size_t len) const {
  if (pieces_.empty() || len == 0) return;
  const uint64_t end = offset + len;
  auto it = pieces_.upper_bound(offset);
  if (it != pieces_.begin()) --it;
  for (; it != pieces_.end() && it->first < end; ++it) {
    uint64_t ps = it->first, pe = ps + it->second.len;
    uint64_t s = std::max(ps, offset), e = std::min(pe, end);
    if (s >= e) continue;
    uint8_t* dst = buf + (s - offset);
    if (it->second.data) {
      std::memcpy(dst, it->second.data->data() + it->second.data_off + (s - ps), e - s);
    } else {
      std::memset(dst, 0, e - s);
    }
  }
}

bool LogOverlay::intersects(uint64_t offset, uint64_t len) const {
  if (pieces_.empty() || len == 0) return false;
  auto it = pieces_.upper_bound(offset);
  if (it != pieces_.begin()) {
    auto prev = std::prev(it);
    if (prev->first + prev->second.len > offset) return true;
  }
  return it != pieces_.end() && it->first < offset + len;
}

uint64_t LogOverlay::end() const {
  if (pieces_.empty()) return 0;
  auto last = std::prev(pieces_.end());
  return last->first + last->second.len;
}

ReplayedFile::ReplayedFile(std::shared_ptr<const File> base, LogOverlay overlay, uint64_t size)
    : base_(std::move(base)), overlay_(std::move(overlay)), size_(size) {}

void ReplayedFile::read_at(uint64_t offset, void* buf, size_t len) const {
  if (offset > size_ || len > size_ - offset) {
    throw Error(ErrorKind::kCorrupt, path(), offset,
                "read of " + std::to_string(len) + " bytes runs past the end of the file (" +
                    std::to_string(size_) + " bytes with the log replayed)");
  }
  auto* out = static_cast<uint8_t*>(buf);
  const uint64_t base_size = base_->size();
  size_t from_base =
      offset >= base_size ? 0 : static_cast<size_t>(std::min<uint64_t>(len, base_size - offset));
  if (from_base) base_->read_at(offset, out, from_base);
  if (from_base < len) std::memset(out + from_base, 0, len - from_base);
  overlay_.apply(offset, out, len);
}

size_t ReplayedFile::read_some(uint64_t offset, void* buf, size_t len) const {
  if (offset >= size_) return 0;
  size_t n = static_cast<size_t>(std::min<uint64_t>(len, size_ - offset));
  read_at(offset, buf, n);
  return n;
}

FileRange ReplayedFile::range_status(uint64_t offset, uint64_t len) const {
  if (overlay_.intersects(offset, len)) return FileRange{len, false};
  if (offset >= base_->size()) return FileRange{len, true};
  return base_->range_status(offset, std::min(len, base_->size() - offset));
}

namespace {

struct DescriptorInfo {
  bool zero = false;
  uint64_t file_offset = 0;
  uint64_t zero_length = 0;
  uint8_t leading[8] = {};
  uint8_t trailing[4] = {};
};

// A log entry that passed every check of 2.3.1 (signature, length, checksum,
// LogGuid, descriptors and their data sectors with matching sequence numbers).
struct EntryInfo {
  uint64_t sequence = 0;
  uint32_t length = 0;
  uint32_t tail = 0;
  uint64_t flushed_file_offset = 0;
  uint64_t last_file_offset = 0;
};

class LogReader {
 public:
  LogReader(std::vector<uint8_t> log, const Guid& guid) : log_(std::move(log)), guid_(guid) {}

  uint64_t length() const { return log_.size(); }

  // Copies `n` bytes of the circular log starting at `pos` (entries may wrap).
  void copy(uint64_t pos, uint8_t* out, uint64_t n) const {
    const uint64_t L = log_.size();
    pos %= L;
    while (n > 0) {
      uint64_t run = std::min(n, L - pos);
      std::memcpy(out, log_.data() + pos, run);
      out += run;
      n -= run;
      pos = (pos + run) % L;
    }
  }

  // Parses and validates the entry at `pos`; fills descriptors when asked.
  bool parse(uint64_t pos, EntryInfo* info, std::vector<DescriptorInfo>* descs,
             std::vector<std::shared_ptr<const std::vector<uint8_t>>>* sectors) const {
    const uint64_t L = log_.size();
    uint8_t h[kLogEntryHeaderSize];
    copy(pos, h, sizeof h);
    if (std::memcmp(h, kLogEntrySignature, 4) != 0) return false;
    uint32_t entry_len = load_le32(h + kLogeEntryLength);
    uint32_t tail = load_le32(h + kLogeTail);
    if (entry_len < kLogSector || entry_len % kLogSector || entry_len > L) return false;
    if (tail % kLogSector || tail >= L) return false;
    if (load_guid(h + kLogeLogGuid) != guid_) return false;
    const uint64_t seq = load_le64(h + kLogeSequence);
    const uint64_t count = load_le32(h + kLogeDescriptorCount);
    const uint64_t sectors_in_entry = entry_len / kLogSector;
    const uint64_t desc_sectors =
        div_round_up(kLogEntryHeaderSize + count * kLogDescriptorSize, kLogSector);
    if (desc_sectors > sectors_in_entry) return false;
    std::vector<uint8_t> e(entry_len);
    copy(pos, e.data(), entry_len);
    if (load_le32(e.data() + kLogeChecksum) !=
        crc32c_with_zero_field(e.data(), e.size(), kLogeChecksum)) {
      return false;
    }
    uint64_t data_index = 0;
    for (uint64_t i = 0; i < count; ++i) {
      const uint8_t* d = e.data() + kLogEntryHeaderSize + i * kLogDescriptorSize;
      if (load_le64(d + 24) != seq) return false;
      DescriptorInfo di;
      di.file_offset = load_le64(d + 16);
      if (di.file_offset % kLogSector) return false;
      if (std::memcmp(d, kZeroDescSignature, 4) == 0) {
        di.zero = true;
        di.zero_length = load_le64(d + 8);
        if (di.zero_length % kLogSector || di.file_offset + di.zero_length < di.file_offset)
          return false;
      } else if (std::memcmp(d, kDataDescSignature, 4) == 0) {
        std::memcpy(di.trailing, d + 4, 4);
        std::memcpy(di.leading, d + 8, 8);
        if (di.file_offset + kLogSector < di.file_offset) return false;
        uint64_t sector = desc_sectors + data_index++;
        if (sector >= sectors_in_entry) return false;
        const uint8_t* s = e.data() + sector * kLogSector;
        if (std::memcmp(s, kDataSectorSignature, 4) != 0 || load_le32(s + 4) != (seq >> 32) ||
            load_le32(s + kLogSector - 4) != (seq & 0xFFFFFFFFu)) {
          return false;
        }
        if (sectors) {
          auto bytes = std::make_shared<std::vector<uint8_t>>(kLogSector);
          std::memcpy(bytes->data(), di.leading, 8);
          std::memcpy(bytes->data() + 8, s + 8, kLogSector - 12);
          std::memcpy(bytes->data() + kLogSector - 4, di.trailing, 4);
          sectors->push_back(std::move(bytes));
        }
      } else {
        return false;
      }
      if (descs) descs->push_back(di);
    }
    info->sequence = seq;
    info->length = entry_len;
    info->tail = tail;
    info->flushed_file_offset = load_le64(h + kLogeFlushedFileOffset);
    info->last_file_offset = load_le64(h + kLogeLastFileOffset);
    return true;
  }

 private:
  std::vector<uint8_t> log_;
  Guid guid_;
};

}  // namespace

std::shared_ptr<const File> replay_log(std::shared_ptr<const File> file, uint64_t log_offset,
                                       uint64_t log_length, const Guid& log_guid,
                                       LogReplayResult* result) {
  const std::string& path = file->path();
  *result = LogReplayResult{};
  uint64_t log_end =
      checked_add(log_offset, log_length, path, kHeader1Offset + kHdrLogOffset, "log region end");
  if (log_length == 0 || log_end > file->size()) {
    throw Error(ErrorKind::kCorrupt, path, log_offset,
                "the header's LogGuid says the log holds pending entries, but the " +
                    std::to_string(log_length) + "-byte log region at offset " +
                    std::to_string(log_offset) + " does not fit in the " +
                    std::to_string(file->size()) + "-byte file");
  }
  // Hyper-V writes a 1 MiB log; anything far larger is refused rather than
  // read into memory.
  if (log_length > 256 * kMiB) {
    throw Error(ErrorKind::kUnsupported, path, log_offset,
                "log region of " + std::to_string(log_length) + " bytes is larger than 256 MiB");
  }
  std::vector<uint8_t> bytes(static_cast<size_t>(log_length));
  file->read_at(log_offset, bytes.data(), bytes.size());
  LogReader reader(std::move(bytes), log_guid);
  const uint64_t sectors = log_length / kLogSector;

  // Every valid entry, by position.
  std::unordered_map<uint64_t, EntryInfo> valid;
  for (uint64_t s = 0; s < sectors; ++s) {
    EntryInfo info;
    if (reader.parse(s * kLogSector, &info, nullptr, nullptr)) valid.emplace(s * kLogSector, info);
  }
  auto next_of = [&](uint64_t pos) -> std::optional<uint64_t> {
    const EntryInfo& e = valid.at(pos);
    uint64_t next = (pos + e.length) % log_length;
    auto it = valid.find(next);
    if (it == valid.end() || it->second.sequence != e.sequence + 1) return std::nullopt;
    return next;
  };
  // A sequence is entries laid end to end with sequence numbers increasing by
  // one; it is valid when its last (head) entry's Tail names an entry of the
  // sequence. The active sequence is the valid one whose head has the largest
  // sequence number (2.3.3). Walks start only at entries nothing continues
  // into, so each chain is walked once.
  std::unordered_map<uint64_t, bool> has_pred;
  for (auto& [pos, e] : valid) {
    if (auto n = next_of(pos)) has_pred[*n] = true;
  }
  std::vector<uint64_t> best;
  uint64_t best_seq = 0;
  auto consider_chain = [&](uint64_t start) {
    std::vector<uint64_t> chain;
    std::unordered_map<uint64_t, size_t> index;
    uint64_t total = 0;
    std::optional<uint64_t> pos = start;
    while (pos && !index.count(*pos)) {
      total += valid.at(*pos).length;
      if (total > log_length) break;
      index[*pos] = chain.size();
      chain.push_back(*pos);
      const EntryInfo& head = valid.at(*pos);
      auto t = index.find(head.tail);
      if (t != index.end() && (best.empty() || head.sequence > best_seq)) {
        best.assign(chain.begin() + static_cast<ptrdiff_t>(t->second), chain.end());
        best_seq = head.sequence;
      }
      pos = next_of(*pos);
    }
  };
  for (auto& [pos, e] : valid) {
    if (!has_pred.count(pos)) consider_chain(pos);
  }
  // A ring where every entry has a predecessor (a log exactly full).
  if (best.empty() && !valid.empty()) {
    for (auto& [pos, e] : valid) consider_chain(pos);
  }
  if (best.empty()) return file;

  const EntryInfo& head = valid.at(best.back());
  if (head.flushed_file_offset > file->size()) {
    throw Error(ErrorKind::kCorrupt, path, log_offset + best.back(),
                "log entry " + std::to_string(head.sequence) + " says the file was flushed up to " +
                    std::to_string(head.flushed_file_offset) + " bytes, but it has only " +
                    std::to_string(file->size()) + " (truncated)");
  }
  LogOverlay overlay;
  for (uint64_t pos : best) {
    EntryInfo info;
    std::vector<DescriptorInfo> descs;
    std::vector<std::shared_ptr<const std::vector<uint8_t>>> data;
    reader.parse(pos, &info, &descs, &data);
    size_t d = 0;
    for (const DescriptorInfo& di : descs) {
      if (di.zero) {
        overlay.put(di.file_offset, di.zero_length, nullptr);
        result->zero_bytes += di.zero_length;
      } else {
        overlay.put(di.file_offset, kLogSector, data[d++]);
        result->data_sectors += 1;
      }
    }
    result->entries_applied += 1;
  }
  result->head_sequence = head.sequence;
  result->last_file_offset = head.last_file_offset;
  uint64_t size = std::max({file->size(), head.last_file_offset, overlay.end()});
  return std::make_shared<ReplayedFile>(std::move(file), std::move(overlay), size);
}

}  // namespace vdisk::vhdx

namespace vdisk::vhdx {

void SectorChanges::put(uint64_t offset, const uint8_t* bytes, size_t n) {
  while (n > 0) {
    const uint64_t sector = offset / kLogSector * kLogSector;
    auto it = sectors_.find(sector);
    if (it == sectors_.end()) {
      std::vector<uint8_t> s(kLogSector);
      file_.read_at(sector, s.data(), s.size());
      it = sectors_.emplace(sector, std::move(s)).first;
    }
    const size_t in = static_cast<size_t>(offset - sector);
    const size_t run = std::min<size_t>(n, kLogSector - in);
    std::memcpy(it->second.data() + in, bytes, run);
    offset += run, bytes += run, n -= run;
  }
}

void SectorChanges::zero(uint64_t offset, uint64_t n) {
  static const std::vector<uint8_t> zeros(kLogSector, 0);
  while (n > 0) {
    const size_t run = static_cast<size_t>(std::min<uint64_t>(n, zeros.size()));
    put(offset, zeros.data(), run);
    offset += run, n -= run;
  }
}

SectorUpdates SectorChanges::updates() const {
  SectorUpdates out;
  std::vector<uint8_t> now(kLogSector);
  for (const auto& [offset, bytes] : sectors_) {
    file_.read_at(offset, now.data(), now.size());
    if (now != bytes) out.emplace(offset, bytes);
  }
  return out;
}

uint64_t log_entry_length(uint64_t n) {
  return (div_round_up(kLogEntryHeaderSize + n * kLogDescriptorSize, kLogSector) + n) * kLogSector;
}

std::vector<uint8_t> encode_log_entry(const Guid& log_guid, uint64_t sequence,
                                      const SectorUpdates& updates, uint64_t flushed_file_offset,
                                      uint64_t last_file_offset) {
  const uint64_t desc_sectors =
      div_round_up(kLogEntryHeaderSize + updates.size() * kLogDescriptorSize, kLogSector);
  std::vector<uint8_t> e((desc_sectors + updates.size()) * kLogSector, 0);
  uint8_t* h = e.data();
  std::memcpy(h, kLogEntrySignature, 4);
  store_le32(h + kLogeEntryLength, static_cast<uint32_t>(e.size()));
  store_le32(h + kLogeTail, 0);  // the entry is its own sequence's first
  store_le64(h + kLogeSequence, sequence);
  store_le32(h + kLogeDescriptorCount, static_cast<uint32_t>(updates.size()));
  store_guid(h + kLogeLogGuid, log_guid);
  store_le64(h + kLogeFlushedFileOffset, flushed_file_offset);
  store_le64(h + kLogeLastFileOffset, last_file_offset);
  size_t i = 0;
  for (const auto& [offset, bytes] : updates) {
    // A data descriptor keeps the first 8 and last 4 bytes of the sector; its
    // data sector the 4084 between, framed by the sequence number's halves.
    uint8_t* d = e.data() + kLogEntryHeaderSize + i * kLogDescriptorSize;
    std::memcpy(d, kDataDescSignature, 4);
    std::memcpy(d + 4, bytes.data() + kLogSector - 4, 4);
    std::memcpy(d + 8, bytes.data(), 8);
    store_le64(d + 16, offset);
    store_le64(d + 24, sequence);
    uint8_t* s = e.data() + (desc_sectors + i) * kLogSector;
    std::memcpy(s, kDataSectorSignature, 4);
    store_le32(s + 4, static_cast<uint32_t>(sequence >> 32));
    std::memcpy(s + 8, bytes.data() + 8, kLogSector - 12);
    store_le32(s + kLogSector - 4, static_cast<uint32_t>(sequence));
    ++i;
  }
  store_checksum(e.data(), e.size(), kLogeChecksum);
  return e;
}

namespace {

struct HeaderSlot {
  uint64_t offset = 0;
  std::optional<Header> header;
};

HeaderSlot load_header(const File& f, uint64_t offset) {
  std::vector<uint8_t> b(kHeaderSize);
  f.read_at(offset, b.data(), b.size());
  HeaderSlot s{offset, std::nullopt};
  if (std::memcmp(b.data(), kHeaderSignature, 4) == 0 &&
      load_le32(b.data() + kHdrChecksum) ==
          crc32c_with_zero_field(b.data(), b.size(), kHdrChecksum)) {
    s.header = decode_header(b.data());
  }
  return s;
}

void store_header(UpdateFile& file, uint64_t offset, const Header& h) {
  std::vector<uint8_t> b(kHeaderSize, 0);
  encode_header(h, b.data());
  store_checksum(b.data(), b.size(), kHdrChecksum);
  file.write_at(offset, b.data(), b.size());
}

// The current header (2.2.2: the valid one with the larger sequence number)
// and the other slot; refuses a pending log.
std::pair<HeaderSlot, HeaderSlot> current_header(const UpdateFile& file) {
  const std::string& path = file.path();
  HeaderSlot a = load_header(file, kHeader1Offset), b = load_header(file, kHeader2Offset);
  if (!a.header && !b.header)
    throw Error(ErrorKind::kCorrupt, path, kHeader1Offset, "neither VHDX header is valid");
  const bool b_current = b.header && (!a.header || b.header->sequence > a.header->sequence);
  HeaderSlot cur = b_current ? b : a;
  HeaderSlot other = b_current ? a : b;
  if (!cur.header->log_guid.is_nil()) {
    throw Error(ErrorKind::kUnsupported, path, cur.offset + kHdrLogGuid,
                "the log holds entries not yet applied (the image was not closed cleanly); "
                "open it once read-write with Hyper-V or 'qemu-img check -r all' first");
  }
  return {cur, other};
}

}  // namespace

void write_header_guids(UpdateFile& file, const Guid& file_write_guid,
                        const Guid& data_write_guid) {
  const auto [cur, other] = current_header(file);
  Header h = *cur.header;
  h.sequence += 1;
  h.file_write_guid = file_write_guid;
  h.data_write_guid = data_write_guid;
  store_header(file, other.offset, h);
  file.sync();
}

void write_through_log(UpdateFile& file, const SectorUpdates& updates, const Guid& log_guid,
                       const Guid& file_write_guid) {
  const std::string& path = file.path();
  const auto [cur, other] = current_header(file);
  Header h = *cur.header;
  // The headers are never logged (2.2.2.1 is their own update procedure);
  // the region tables, the BAT and the metadata are.
  for (const auto& [offset, bytes] : updates) {
    if (offset % kLogSector || bytes.size() != kLogSector || offset < kRegionTable1Offset)
      throw Error(ErrorKind::kInvalidArgument, path, offset, "bad VHDX log update");
  }
  const uint64_t size = file.size();
  const std::vector<uint8_t> entry = encode_log_entry(log_guid, 1, updates, size, size);
  if (entry.size() > h.log_length) {
    throw Error(ErrorKind::kUnsupported, path, cur.offset + kHdrLogLength,
                "the change needs a " + std::to_string(entry.size()) +
                    "-byte log entry but the log region holds " + std::to_string(h.log_length) +
                    " bytes");
  }
  file.write_at(h.log_offset, entry.data(), entry.size());
  file.sync();

  // 2.2.2.1: the non-current header becomes current with the log named in it.
  h.sequence += 1;
  h.file_write_guid = file_write_guid;
  h.log_guid = log_guid;
  store_header(file, other.offset, h);
  file.sync();

  for (const auto& [offset, bytes] : updates) file.write_at(offset, bytes.data(), bytes.size());
  file.sync();

  // Applied: the log is empty again (LogGuid zero) in the newest header.
  h.sequence += 1;
  h.log_guid = Guid{};
  store_header(file, cur.offset, h);
  file.sync();
}

}  // namespace vdisk::vhdx
