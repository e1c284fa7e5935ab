// GNU ddrescue mapfiles (GNU ddrescue manual, chapter "Mapfile structure";
// called "logfile" before ddrescue 1.20, same format).
//
// A mapfile is text: comment lines ('#' at the start of a line or after
// whitespace, to the end of the line), then the status line
//   current_pos  current_status  [current_pass]
// then the list of data blocks, one per line:
//   pos  size  status
// Numbers are non-negative integers in C notation: "0x" hexadecimal (what
// ddrescue writes), a leading "0" octal, otherwise decimal. Block statuses:
//   '?' non-tried, '*' non-trimmed, '/' non-scraped, '-' bad sector,
//   '+' finished (rescued).
// The status line's status may also be 'F' (filling) or 'G' (generating).
//
// The parser is strict: the blocks must start at 0 and be contiguous, sorted
// and non-overlapping (the manual: "must be contiguous and non-overlapping");
// every error names the mapfile and the 1-based line number.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "formats/core/block_device.h"
#include "formats/core/file.h"

namespace vdisk::ddrescue {

struct MapBlock {
  uint64_t pos = 0;
  uint64_t size = 0;
  char status = '?';
  int line = 0;  // 1-based line in the mapfile
};

struct Mapfile {
  std::string path;
  uint64_t current_pos = 0;
  char current_status = '+';
  std::optional<uint64_t> current_pass;  // absent in mapfiles of old versions
  std::vector<MapBlock> blocks;          // sorted, contiguous from 0
  // End of the last block (0 when there are none).
  uint64_t end() const { return blocks.empty() ? 0 : blocks.back().pos + blocks.back().size; }
};

// An area of the disk that was not rescued (any status but '+'). Adjacent
// blocks of one status are merged.
struct BadArea {
  uint64_t start = 0;
  uint64_t length = 0;
  char status = '?';
};

// "non-tried", "non-trimmed", "non-scraped", "bad-sector", "finished".
const char* status_name(char status);

// Parses mapfile text. Throws Error(kCorrupt, path) "line N: ..." on any
// violation of the structure above.
Mapfile parse_mapfile(const std::string& text, const std::string& path);

// Reads and parses the mapfile at `path` through `env` (refuses files over
// 256 MiB: a real mapfile of a damaged 20 TB disk is a few MiB).
Mapfile load_mapfile(Env& env, const std::string& path);

// Throws Error(kCorrupt) unless the blocks cover exactly [0, disk_size). A
// mapfile that runs past the image's end describes a longer disk: either
// the image is truncated (rescued bytes past its end are missing), or
// ddrescue never wrote the unread tail (the message says how to extend the
// image so the tail counts as unrescued). Both name the two sizes.
void check_covers(const Mapfile& map, uint64_t disk_size);

// The non-'+' areas inside [0, disk_size), sorted, adjacent blocks of the
// same status merged.
std::vector<BadArea> bad_areas(const Mapfile& map, uint64_t disk_size);

// Sum of the areas' lengths.
uint64_t bad_bytes(const std::vector<BadArea>& areas);

// The text of a mapfile for a finished run over a disk of `disk_size` bytes:
// `areas` (sorted, non-overlapping, inside the disk, none '+') with their
// statuses, '+' everywhere else; `comments` become '#' lines at the top.
// Numbers are written in hexadecimal, as ddrescue writes them; parse_mapfile
// reads the result back. Throws Error(kInvalidArgument) for bad areas.
std::string format_mapfile(uint64_t disk_size, const std::vector<BadArea>& areas,
                           const std::vector<std::string>& comments);

// The text of `map` as GNU ddrescue writes it: `comments` as '#' lines, the
// status line (current_pos, current_status, current_pass when set), then
// the blocks, numbers in hexadecimal. parse_mapfile reads it back.
std::string format_mapfile(const Mapfile& map, const std::vector<std::string>& comments);

// Replaces the file at `path` with `text` atomically through `env`
// (Env::create_output: a temporary sibling, fsynced and renamed over the old
// one, the folder fsynced): a crash at any moment leaves the previous
// mapfile or the new one, never a torn one.
void save_mapfile(Env& env, const std::string& path, const std::string& text);

// The state of a rescue in progress: every byte of [0, size) has one block
// status ('?', '*', '/', '-', '+'). Adjacent blocks never share a status.
// Byte counts per status are kept as blocks change, so progress costs
// nothing. Not thread-safe.
class RescueMap {
 public:
  // A disk of `size` bytes, all non-tried.
  explicit RescueMap(uint64_t size);
  // The state a mapfile records, for a disk of `size` bytes. A mapfile that
  // ends before `size` (an older run over a shorter domain) leaves the rest
  // non-tried; one that runs past it is refused (Error kCorrupt, naming both
  // sizes: it belongs to another disk).
  static RescueMap from_mapfile(const Mapfile& map, uint64_t size);

  uint64_t size() const { return size_; }
  // Marks [pos, pos + len) (clipped to the disk) with `status`.
  void set(uint64_t pos, uint64_t len, char status);
  // The block (maximal run of one status) holding `pos` (< size()).
  MapBlock block_at(uint64_t pos) const;
  // The first block with a status in `statuses` that ends after `pos`, cut
  // to start at `pos` at the earliest; nullopt when none.
  std::optional<MapBlock> next(uint64_t pos, const char* statuses) const;
  // The last block with a status in `statuses` that starts before `end`, cut
  // to end at `end` at the latest; nullopt when none.
  std::optional<MapBlock> prev(uint64_t end, const char* statuses) const;
  // Bytes with `status`, and the number of its blocks (areas).
  uint64_t bytes(char status) const;
  size_t areas(char status) const;
  // Every block, in order.
  std::vector<MapBlock> blocks() const;

  // The status line.
  uint64_t current_pos = 0;
  char current_status = '?';
  uint64_t current_pass = 1;

  // The mapfile this state is (path: used in messages).
  Mapfile to_mapfile(const std::string& path) const;

 private:
  void split(uint64_t pos);
  static int index(char status);

  uint64_t size_ = 0;
  std::map<uint64_t, char> starts_;  // block start -> status; a block runs to the next start
  uint64_t bytes_[5] = {};
};

// A mapfile of a disk of `disk_size` bytes whose unrescued areas are those
// of `base` (null: none) with `ranges` painted over them with `status`
// (overlay_areas with the ranges on top): how an image that records its own
// unread sectors (an E01's error2) is seen through the same RescuedDevice as
// a ddrescue mapfile. `ranges` must lie inside the disk (parts past it are
// cut off). The result's path is `path` (used in messages).
Mapfile mapfile_with_bad_ranges(const Mapfile* base, uint64_t disk_size,
                                const std::vector<ByteRange>& ranges, char status,
                                const std::string& path);

// Two lists of unrescued areas laid one over the other: where an area of
// `top` lies, its status holds; elsewhere `bottom`'s. Used for a run that
// found more bad ranges on top of what an earlier mapfile said: the earlier
// mapfile's areas on top (they keep their status) and the read errors of the
// copy below. Neither list needs to be sorted; areas within one list may
// overlap (the first one, by start, decides). Adjacent pieces of one status
// are merged; '+' areas count as absent. The result is sorted and
// non-overlapping, as format_mapfile takes it.
std::vector<BadArea> overlay_areas(const std::vector<BadArea>& top,
                                   const std::vector<BadArea>& bottom);

}  // namespace vdisk::ddrescue
