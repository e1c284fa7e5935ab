#include "formats/vhdx/vhdx_inplace.h"

#include <algorithm>
#include <cstring>
#include <map>
#include <vector>

#include "formats/core/endian.h"
#include "formats/core/error.h"
#include "formats/core/guid.h"
#include "formats/vhdx/vhdx_log.h"
#include "formats/vhdx/vhdx_reader.h"
#include "formats/vhdx/vhdx_writer.h"

namespace vdisk::vhdx {

namespace {

// Fresh GUIDs (log, FileWriteGuid, DataWriteGuid). The in-place hook has no
// Env of its own: the process-wide one is the host's random source.
Guid fresh_guid() {
  return Guid::random(Env::posix());
}

class VhdxUpdater final : public ImageUpdater {
 public:
  VhdxUpdater(UpdateFile& file, const VhdxDevice& dev)
      : file_(file), m_(dev.meta()), g_(m_.geometry), end_(align_up(file.size(), kMiB)) {
    // The reader checked the BAT fits its region and the region the file;
    // with no log pending the file holds it as it is.
    std::vector<uint8_t> raw(static_cast<size_t>(g_.total_bat_entries * 8));
    file.read_at(m_.bat_offset, raw.data(), raw.size());
    bat_.resize(static_cast<size_t>(g_.total_bat_entries));
    for (size_t i = 0; i < bat_.size(); ++i) bat_[i] = load_le64(raw.data() + 8 * i);
    for (const MetadataEntry& e : read_table())
      items_end_ = std::max(items_end_, uint64_t{e.offset} + e.length);
  }

  uint64_t granularity() const override { return g_.block_size; }

  void write(uint64_t offset, const void* buf, size_t len) override {
    const uint64_t bs = g_.block_size;
    if (offset % bs || len % bs)
      throw Error(ErrorKind::kInvalidArgument, file_.path(), offset, "unaligned in-place write");
    const auto* p = static_cast<const uint8_t*>(buf);
    for (uint64_t done = 0; done < len; done += bs) {
      const uint64_t b = (offset + done) / bs;
      if (b >= g_.data_blocks)
        throw Error(ErrorKind::kInvalidArgument, file_.path(), offset + done,
                    "write past the BAT's " + std::to_string(g_.data_blocks) + " blocks");
      if (!data_guid_changed_) {
        // 2.2.2: DataWriteGuid changes before the first write of user-visible
        // data, so nothing trusts this file's old content once it may differ.
        write_header_guids(file_, fresh_guid(), fresh_guid());
        data_guid_changed_ = true;
      }
      const uint64_t n = std::min(bs, g_.virtual_size - b * bs);
      auto pend = pending_.find(b);
      const uint64_t e = pend != pending_.end() ? pend->second : bat_[g_.payload_entry(b)];
      uint64_t at;
      switch (payload_state(e)) {
        case PayloadState::kFullyPresent:
          at = bat_file_offset(e);
          break;
        case PayloadState::kPartiallyPresent:
          // Unmarked sectors are invisible until the entry changes; marked
          // ones get the content they already show (rebase) or the new one
          // (commit).
          at = bat_file_offset(e);
          pending_[b] = bat_entry(PayloadState::kFullyPresent, at);
          break;
        default:
          // 2.5.1: payload blocks on 1 MiB boundaries; block sizes are whole MiB.
          at = end_;
          end_ += bs;
          pending_[b] = bat_entry(PayloadState::kFullyPresent, at);
          break;
      }
      file_.write_at(at, p + done, static_cast<size_t>(n));
    }
  }

  void flush() override {
    if (pending_.empty()) {
      file_.sync();
      return;
    }
    // A new last block is whole in the file (the reader wants it inside).
    if (end_ > file_.size()) file_.set_size(end_);
    file_.sync();
    SectorChanges changes(file_);
    for (const auto& [b, e] : pending_) put_entry(changes, g_.payload_entry(b), e);
    log_in_batches(changes.updates());
    for (const auto& [b, e] : pending_) bat_[g_.payload_entry(b)] = e;
    pending_.clear();
  }

  void set_parent(const std::string& name, const std::string& format,
                  const BlockDevice* parent) override {
    flush();
    if (name.empty()) {
      if (m_.has_parent) drop_parent();
      return;
    }
    const auto* v = dynamic_cast<const VhdxDevice*>(parent);
    if (!v)
      throw Error(ErrorKind::kUnsupported, file_.path(), std::nullopt,
                  "the parent " + name + " is " + (parent ? parent->info().format : format) +
                      ": a differencing VHDX names its parent by a VHDX's DataWriteGuid");
    if (m_.leave_blocks_allocated)
      throw Error(ErrorKind::kUnsupported, file_.path(), std::nullopt,
                  "a fixed VHDX (LeaveBlocksAllocated) cannot be a differencing disk");
    const std::vector<uint8_t> item = parent_locator_item(v->meta().data_write_guid, name,
                                                          Env::posix().real_path(parent->label()));
    SectorChanges changes(file_);
    std::vector<MetadataEntry> table = read_table();
    const size_t old_count = table.size();
    auto it = std::find_if(table.begin(), table.end(),
                           [](const MetadataEntry& e) { return e.item_id == kParentLocatorGuid; });
    if (it == table.end()) {
      if (kMetadataHeaderSize + (table.size() + 1) * kMetadataEntrySize > kMetadataTableSize)
        refuse(m_.metadata_offset, "its metadata table has no room for a parent locator");
      table.push_back(MetadataEntry{kParentLocatorGuid, 0, 0, kMetaIsRequired});
      it = table.end() - 1;
    }
    // In place when the new item fits the old one's bytes, else after the
    // last item (2.6.1.2: items lie in the region, after the table).
    if (item.size() > it->length) {
      const uint64_t at = align_up(std::max<uint64_t>(items_end_, kMetadataTableSize), 8);
      if (at + item.size() > m_.metadata_length)
        refuse(m_.metadata_offset, "its " + std::to_string(m_.metadata_length) +
                                       "-byte metadata region has no room for a " +
                                       std::to_string(item.size()) + "-byte parent locator");
      it->offset = static_cast<uint32_t>(at);
      items_end_ = at + item.size();
    }
    it->length = static_cast<uint32_t>(item.size());
    it->flags = kMetaIsRequired;
    changes.put(m_.metadata_offset + it->offset, item.data(), item.size());
    put_table(changes, table, old_count);
    if (!m_.has_parent) {
      // 2.5: a differencing disk's BAT runs to the end of its last chunk.
      const Geometry dg =
          make_geometry(g_.virtual_size, g_.block_size, g_.logical_sector_size, true);
      if (dg.total_bat_entries * 8 > m_.bat_length)
        refuse(m_.bat_offset, "its BAT region has no room for a differencing disk's entries");
      for (uint64_t i = g_.total_bat_entries; i < dg.total_bat_entries; ++i)
        put_entry(changes, i, 0);
      set_has_parent(changes, true);
    }
    const SectorUpdates updates = changes.updates();
    if (log_entry_length(updates.size()) > m_.log_length)
      refuse(m_.log_offset, "the parent locator change needs more than its " +
                                std::to_string(m_.log_length) + "-byte log holds");
    write_through_log(file_, updates, fresh_guid(), fresh_guid());
    if (!m_.has_parent) {
      m_.has_parent = true;
      g_ = make_geometry(g_.virtual_size, g_.block_size, g_.logical_sector_size, true);
      bat_.resize(static_cast<size_t>(g_.total_bat_entries), 0);
    }
  }

 private:
  [[noreturn]] void refuse(uint64_t at, const std::string& why) const {
    throw Error(ErrorKind::kUnsupported, file_.path(), at, "cannot change in place: " + why);
  }

  void put_entry(SectorChanges& changes, uint64_t index, uint64_t entry) {
    uint8_t v[8];
    store_le64(v, entry);
    changes.put(m_.bat_offset + index * 8, v, sizeof v);
  }

  // The updates in as many log entries as the log region needs, each applied
  // before the next is written. Callers order them so that every entry
  // leaves a consistent image.
  void log_in_batches(const SectorUpdates& all) {
    uint64_t per_entry = 0;
    while (log_entry_length(per_entry + 1) <= m_.log_length) ++per_entry;
    if (per_entry == 0) refuse(m_.log_offset, "its log region holds no log entry");
    SectorUpdates batch;
    for (const auto& [offset, bytes] : all) {
      batch.emplace(offset, bytes);
      if (batch.size() == per_entry) {
        write_through_log(file_, batch, fresh_guid(), fresh_guid());
        batch.clear();
      }
    }
    if (!batch.empty()) write_through_log(file_, batch, fresh_guid(), fresh_guid());
  }

  // 2.6.1: the metadata table's entries (the reader validated them).
  std::vector<MetadataEntry> read_table() const {
    std::vector<uint8_t> t(kMetadataTableSize);
    file_.read_at(m_.metadata_offset, t.data(), t.size());
    const uint16_t count = std::min<uint16_t>(load_le16(t.data() + 10), kMaxMetadataEntries);
    std::vector<MetadataEntry> out;
    for (uint32_t i = 0; i < count; ++i)
      out.push_back(decode_metadata_entry(t.data() + kMetadataHeaderSize + i * kMetadataEntrySize));
    return out;
  }

  // The table with `entries` (its signature kept), the slots past them up
  // to `old_count` zeroed.
  void put_table(SectorChanges& changes, const std::vector<MetadataEntry>& entries,
                 size_t old_count) {
    const size_t slots = std::max(entries.size(), old_count);
    std::vector<uint8_t> t(kMetadataHeaderSize + slots * kMetadataEntrySize, 0);
    file_.read_at(m_.metadata_offset, t.data(), kMetadataHeaderSize);
    store_le16(t.data() + 10, static_cast<uint16_t>(entries.size()));
    for (size_t i = 0; i < entries.size(); ++i)
      encode_metadata_entry(entries[i], t.data() + kMetadataHeaderSize + i * kMetadataEntrySize);
    changes.put(m_.metadata_offset, t.data(), t.size());
  }

  // 2.6.2.1 File Parameters: bit 1 of the flags, HasParent.
  void set_has_parent(SectorChanges& changes, bool on) {
    for (const MetadataEntry& e : read_table()) {
      if (e.item_id != kFileParametersGuid || e.length < 8) continue;
      const uint64_t at = m_.metadata_offset + e.offset + 4;
      uint8_t f[4];
      file_.read_at(at, f, sizeof f);
      store_le32(f, on ? load_le32(f) | kHasParent : load_le32(f) & ~kHasParent);
      changes.put(at, f, sizeof f);
      return;
    }
    refuse(m_.metadata_offset, "its metadata has no file parameters item");
  }

  // The child stands alone. Each step leaves a differencing disk that reads
  // as before (the caller copied whatever the parent showed that is not
  // zero, or -u asked for this content):
  // 1. partially present blocks: their unmarked sectors zeroed in the file
  //    (unseen while the entry says partial), synced, then fully present;
  // 2. the sector bitmap entries cleared (no block is partial any more);
  // 3. one log entry: HasParent cleared, the locator item's table entry
  //    removed, the BAT entries past a dynamic disk's count cleared.
  void drop_parent() {
    const uint64_t lss = g_.logical_sector_size;
    const uint64_t per_block = g_.block_size / lss;
    SectorChanges partial(file_);
    bool any = false;
    for (uint64_t b = 0; b < g_.data_blocks; ++b) {
      const uint64_t e = bat_[g_.payload_entry(b)];
      if (payload_state(e) != PayloadState::kPartiallyPresent) continue;
      const uint64_t sb = bat_[g_.bitmap_entry(b / g_.chunk_ratio)];
      std::vector<uint8_t> bits(static_cast<size_t>(per_block / 8));
      file_.read_at(bat_file_offset(sb) + (b % g_.chunk_ratio) * per_block / 8, bits.data(),
                    bits.size());
      const uint64_t sectors =
          div_round_up(std::min(g_.block_size, g_.virtual_size - b * g_.block_size), lss);
      for (uint64_t s = 0; s < sectors;) {
        if (bits[s / 8] & (1u << (s % 8))) {
          ++s;
          continue;
        }
        uint64_t t = s;
        while (t < sectors && !(bits[t / 8] & (1u << (t % 8)))) ++t;
        const std::vector<uint8_t> zeros(static_cast<size_t>((t - s) * lss), 0);
        file_.write_at(bat_file_offset(e) + s * lss, zeros.data(), zeros.size());
        s = t;
      }
      put_entry(partial, g_.payload_entry(b),
                bat_entry(PayloadState::kFullyPresent, bat_file_offset(e)));
      bat_[g_.payload_entry(b)] = bat_entry(PayloadState::kFullyPresent, bat_file_offset(e));
      any = true;
    }
    if (any) {
      file_.sync();
      log_in_batches(partial.updates());
    }
    SectorChanges bitmaps(file_);
    for (uint64_t c = 0; c < g_.bitmap_blocks; ++c) {
      if (g_.bitmap_entry(c) >= bat_.size() || bat_[g_.bitmap_entry(c)] == 0) continue;
      put_entry(bitmaps, g_.bitmap_entry(c), 0);
      bat_[g_.bitmap_entry(c)] = 0;
    }
    log_in_batches(bitmaps.updates());

    SectorChanges changes(file_);
    std::vector<MetadataEntry> table = read_table();
    const size_t old_count = table.size();
    std::erase_if(table, [](const MetadataEntry& e) { return e.item_id == kParentLocatorGuid; });
    put_table(changes, table, old_count);
    set_has_parent(changes, false);
    const Geometry dg =
        make_geometry(g_.virtual_size, g_.block_size, g_.logical_sector_size, false);
    for (uint64_t i = dg.total_bat_entries; i < g_.total_bat_entries; ++i) put_entry(changes, i, 0);
    write_through_log(file_, changes.updates(), fresh_guid(), fresh_guid());
    m_.has_parent = false;
    g_ = dg;
    bat_.resize(static_cast<size_t>(g_.total_bat_entries));
  }

  UpdateFile& file_;
  ImageMeta m_;
  Geometry g_;
  std::vector<uint64_t> bat_;
  std::map<uint64_t, uint64_t> pending_;  // block -> its new BAT entry
  uint64_t end_;                          // where the next new block goes
  uint64_t items_end_ = 0;                // end of the last metadata item
  bool data_guid_changed_ = false;
};

}  // namespace

std::unique_ptr<ImageUpdater> update_vhdx(UpdateFile& file, const BlockDevice& layer) {
  const auto* dev = dynamic_cast<const VhdxDevice*>(&layer);
  if (!dev) throw Error(ErrorKind::kInvalidArgument, file.path(), std::nullopt, "not a VHDX");
  // The tables are read from the file as stored and the log region is
  // reused from its start: a log still to replay must be applied first.
  if (!dev->meta().log_guid.is_nil())
    throw Error(ErrorKind::kUnsupported, file.path(), std::nullopt,
                "cannot change in place: its log holds entries not yet applied (not closed "
                "cleanly); open it once read-write with Hyper-V or 'qemu-img check -r all' first");
  return std::make_unique<VhdxUpdater>(file, *dev);
}

}  // namespace vdisk::vhdx
