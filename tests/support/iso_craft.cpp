#include "tests/support/iso_craft.h"

#include <cstring>

namespace vdisk::test::isocraft {

namespace {

constexpr uint32_t kBlock = 2048;

void both32(std::string& s, size_t at, uint32_t v) {
  for (int i = 0; i < 4; ++i) {
    s[at + i] = static_cast<char>(v >> (8 * i));
    s[at + 7 - i] = static_cast<char>(v >> (8 * i));
  }
}

void both16(std::string& s, size_t at, uint16_t v) {
  s[at] = static_cast<char>(v);
  s[at + 1] = static_cast<char>(v >> 8);
  s[at + 2] = static_cast<char>(v >> 8);
  s[at + 3] = static_cast<char>(v);
}

std::string header(const char* sig, size_t len) {
  return {sig[0], sig[1], static_cast<char>(len), 1};
}

std::string both32s(uint32_t v) {
  std::string s(8, '\0');
  both32(s, 0, v);
  return s;
}

}  // namespace

std::string record(uint32_t lba, uint32_t size, uint8_t flags, const std::string& id,
                   const std::string& su) {
  size_t base = 33 + id.size() + (id.size() % 2 == 0 ? 1 : 0);
  size_t len = base + su.size();
  if (len % 2) ++len;
  std::string r(len, '\0');
  r[0] = static_cast<char>(len);
  both32(r, 2, lba);
  both32(r, 10, size);
  // 2020-01-01 00:00:00 UTC
  r[18] = 120;
  r[19] = 1;
  r[20] = 1;
  r[25] = static_cast<char>(flags);
  both16(r, 28, 1);
  r[32] = static_cast<char>(id.size());
  std::memcpy(&r[33], id.data(), id.size());
  std::memcpy(&r[base], su.data(), su.size());
  return r;
}

std::string sp() {
  return header("SP", 7) + std::string{static_cast<char>(0xBE), static_cast<char>(0xEF), 0};
}

std::string ce(uint32_t block, uint32_t offset, uint32_t length) {
  return header("CE", 28) + both32s(block) + both32s(offset) + both32s(length);
}

std::string nm(const std::string& name, bool more) {
  return header("NM", 5 + name.size()) + static_cast<char>(more ? 1 : 0) + name;
}

std::string px(uint32_t mode) {
  return header("PX", 36) + both32s(mode) + both32s(1) + both32s(0) + both32s(0);
}

Image::Image() : img_(18 * kBlock, 0) {}

uint32_t Image::alloc(uint32_t blocks) {
  uint32_t lba = static_cast<uint32_t>(img_.size() / kBlock);
  img_.resize(img_.size() + static_cast<size_t>(blocks) * kBlock, 0);
  return lba;
}

void Image::put(uint32_t lba, uint32_t offset, const std::string& bytes) {
  std::memcpy(img_.data() + static_cast<size_t>(lba) * kBlock + offset, bytes.data(), bytes.size());
}

std::pair<uint32_t, uint32_t> Image::dir(const std::vector<std::string>& records,
                                         std::pair<uint32_t, uint32_t> parent,
                                         const std::string& dot_su) {
  // Size first: records packed per block.
  std::string dot0 = record(0, 0, 2, std::string(1, '\0'), dot_su);
  std::string dot1 = record(0, 0, 2, std::string(1, '\1'));
  size_t used = 0, blocks = 1;
  auto place = [&](const std::string& r) {
    if (used + r.size() > kBlock) {
      ++blocks;
      used = 0;
    }
    size_t at = (blocks - 1) * kBlock + used;
    used += r.size();
    return at;
  };
  std::vector<size_t> at;
  at.push_back(place(dot0));
  at.push_back(place(dot1));
  for (const std::string& r : records) at.push_back(place(r));
  uint32_t size = static_cast<uint32_t>(blocks * kBlock);
  uint32_t lba = alloc(static_cast<uint32_t>(blocks));
  if (parent.first == 0) parent = {lba, size};
  dot0 = record(lba, size, 2, std::string(1, '\0'), dot_su);
  dot1 = record(parent.first, parent.second, 2, std::string(1, '\1'));
  std::memcpy(img_.data() + static_cast<size_t>(lba) * kBlock + at[0], dot0.data(), dot0.size());
  std::memcpy(img_.data() + static_cast<size_t>(lba) * kBlock + at[1], dot1.data(), dot1.size());
  for (size_t i = 0; i < records.size(); ++i) {
    std::memcpy(img_.data() + static_cast<size_t>(lba) * kBlock + at[i + 2], records[i].data(),
                records[i].size());
  }
  return {lba, size};
}

std::vector<uint8_t> Image::finish(std::pair<uint32_t, uint32_t> root) {
  std::string pvd(kBlock, '\0');
  pvd[0] = 1;
  std::memcpy(&pvd[1], "CD001", 5);
  pvd[6] = 1;
  for (int i = 8; i < 72; ++i) pvd[i] = ' ';  // system and volume identifiers
  std::memcpy(&pvd[40], "CRAFTED", 7);
  both32(pvd, 80, static_cast<uint32_t>(img_.size() / kBlock));
  both16(pvd, 120, 1);
  both16(pvd, 124, 1);
  both16(pvd, 128, kBlock);
  std::string rr = record(root.first, root.second, 2, std::string(1, '\0'));
  std::memcpy(&pvd[156], rr.data(), 34);
  pvd[881] = 1;
  std::string term(kBlock, '\0');
  term[0] = static_cast<char>(255);
  std::memcpy(&term[1], "CD001", 5);
  term[6] = 1;
  put(16, 0, pvd);
  put(17, 0, term);
  return img_;
}

std::vector<uint8_t> name_bomb(uint32_t entries, uint32_t areas, uint32_t area_bytes) {
  Image im;
  // The chain: each area is NM pieces of 250 bytes (CONTINUE), then a CE to
  // the next area.
  uint32_t blocks_per_area = (area_bytes + kBlock - 1) / kBlock;
  uint32_t first = im.alloc(areas * blocks_per_area);
  for (uint32_t a = 0; a < areas; ++a) {
    uint32_t lba = first + a * blocks_per_area;
    std::string area;
    while (area.size() + 255 + 28 <= area_bytes) area += nm(std::string(250, 'x'), true);
    if (a + 1 < areas) area += ce(lba + blocks_per_area, 0, area_bytes);
    area.resize(area_bytes, '\0');
    for (uint32_t b = 0; b < blocks_per_area; ++b) {
      im.put(lba + b, 0, area.substr(static_cast<size_t>(b) * kBlock, kBlock));
    }
  }
  uint32_t data = im.alloc(1);
  im.put(data, 0, "data\n");
  std::vector<std::string> recs;
  for (uint32_t i = 0; i < entries; ++i) {
    char id[16];
    std::snprintf(id, sizeof id, "F%07u.;1", i);
    recs.push_back(record(data, 5, 0, id, nm("n", true) + ce(first, 0, area_bytes)));
  }
  // One ordinary entry, which must still be listed.
  recs.push_back(record(data, 5, 0, "OK.;1", nm("ok.txt")));
  auto root = im.dir(recs, {0, 0}, sp());
  return im.finish(root);
}

std::vector<uint8_t> dag(int depth) {
  Image im;
  uint32_t data = im.alloc(1);
  im.put(data, 0, "leaf\n");
  auto child = im.dir({record(data, 5, 0, "LEAF.TXT;1")});
  for (int level = 1; level < depth; ++level) {
    child = im.dir(
        {record(child.first, child.second, 2, "A"), record(child.first, child.second, 2, "B")});
  }
  auto root = im.dir(
      {record(child.first, child.second, 2, "A"), record(child.first, child.second, 2, "B")});
  return im.finish(root);
}

std::vector<uint8_t> overlap(uint32_t files, uint32_t bytes) {
  Image im;
  uint32_t blocks = (bytes + kBlock - 1) / kBlock;
  uint32_t data = im.alloc(blocks);
  std::string fill(static_cast<size_t>(blocks) * kBlock, 'z');
  for (uint32_t b = 0; b < blocks; ++b) im.put(data + b, 0, fill.substr(0, kBlock));
  std::vector<std::string> recs;
  for (uint32_t i = 0; i < files; ++i) {
    char id[16];
    std::snprintf(id, sizeof id, "F%05u.;1", i);
    recs.push_back(record(data, bytes, 0, id));
  }
  auto root = im.dir(recs);
  return im.finish(root);
}

std::vector<uint8_t> plain() {
  Image im;
  uint32_t data = im.alloc(3);
  im.put(data, 0, "hello\n");
  im.put(data + 1, 0, "noext\n");
  im.put(data + 2, 0, "readme\n");
  auto docs = im.dir({record(data, 6, 0, "F1.TXT;1")});
  auto root = im.dir({record(docs.first, docs.second, 2, "DOCS"),
                      record(data + 1, 6, 0, "NOEXT.;1"), record(data + 2, 7, 0, "README.TXT;1")});
  return im.finish(root);
}

}  // namespace vdisk::test::isocraft
