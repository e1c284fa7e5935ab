// Crafted ISO 9660 images for the hostile tests and the fuzz seeds: a volume
// built record by record (ECMA-119 8.4, 9.1; SUSP/RRIP entries), so a test
// can make what no writer makes — Rock Ridge names continued through long CE
// chains, directories named by two records (a DAG), files sharing extents,
// plain level-1 names. Nothing here comes from vdisk's own writer.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace vdisk::test::isocraft {

// One directory record: extent `lba`, data length `size`, `flags`
// (0x02 directory, 0x80 multi-extent), identifier `id` (raw bytes: "\0" is
// ".", "\1" is ".."), then the system use bytes `su` (at most 255 in all).
std::string record(uint32_t lba, uint32_t size, uint8_t flags, const std::string& id,
                   const std::string& su = "");

// SUSP / RRIP entries (SUSP 5.1, 5.3; RRIP 4.1.1, 4.1.4).
std::string sp();
std::string ce(uint32_t block, uint32_t offset, uint32_t length);
std::string nm(const std::string& name, bool more = false);
std::string px(uint32_t mode);

class Image {
 public:
  Image();
  // Appends `blocks` zeroed 2048-byte blocks; returns the first one's LBA.
  uint32_t alloc(uint32_t blocks);
  // Writes `bytes` at LBA `lba` + `offset`.
  void put(uint32_t lba, uint32_t offset, const std::string& bytes);
  // A directory extent at a new LBA: ".", ".." (naming `parent`, or itself
  // when parent.first == 0) and `records`, packed so none crosses a block.
  // `dot_su` is the system use of "." (the root's carries SP). Returns
  // (LBA, size in bytes).
  std::pair<uint32_t, uint32_t> dir(const std::vector<std::string>& records,
                                    std::pair<uint32_t, uint32_t> parent = {0, 0},
                                    const std::string& dot_su = "");
  // Writes the primary descriptor (root = `root`) and the terminator, and
  // returns the image.
  std::vector<uint8_t> finish(std::pair<uint32_t, uint32_t> root);

 private:
  std::vector<uint8_t> img_;
};

// The layouts, each a complete image:
// - name_bomb: `entries` files in the root whose Rock Ridge NM continues
//   through a chain of `areas` CE areas of `area_bytes` each, shared by all
//   entries (each name would be areas x area_bytes long).
std::vector<uint8_t> name_bomb(uint32_t entries, uint32_t areas, uint32_t area_bytes);
// - dag: `depth` directories, each naming the next one twice ("A" and "B"),
//   the last holding one file: 2^depth paths to it.
std::vector<uint8_t> dag(int depth);
// - overlap: `files` files in the root, all pointing at one extent of
//   `bytes` bytes of non-zero data.
std::vector<uint8_t> overlap(uint32_t files, uint32_t bytes);
// - plain: no Rock Ridge, no Joliet: DOCS/F1.TXT;1 ("hello\n"), NOEXT.;1,
//   README.TXT;1.
std::vector<uint8_t> plain();

}  // namespace vdisk::test::isocraft
