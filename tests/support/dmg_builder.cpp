#include "tests/support/dmg_builder.h"

#include <bzlib.h>
#include <zlib.h>

#include <algorithm>
#include <string>

#include "formats/core/block_device.h"
#include "formats/core/endian.h"

namespace vdisk::test {

std::vector<uint8_t> adc_encode(const std::vector<uint8_t>& in) {
  std::vector<uint8_t> out;
  std::vector<uint8_t> lit;
  auto flush = [&] {
    for (size_t i = 0; i < lit.size(); i += 128) {
      size_t n = std::min<size_t>(128, lit.size() - i);
      out.push_back(static_cast<uint8_t>(0x80 | (n - 1)));
      out.insert(out.end(), lit.begin() + i, lit.begin() + i + n);
    }
    lit.clear();
  };
  size_t i = 0;
  while (i < in.size()) {
    // A run of the previous byte: a match at distance 1.
    size_t run = 0;
    while (i > 0 && i + run < in.size() && in[i + run] == in[i - 1] && run < 67) ++run;
    if (run >= 3) {
      flush();
      if (run <= 18 && (i % 2)) {
        out.push_back(static_cast<uint8_t>((run - 3) << 2));  // 2-byte form, distance 1
        out.push_back(0);
      } else if (run >= 4) {
        out.push_back(static_cast<uint8_t>(0x40 | (run - 4)));  // 3-byte form
        out.push_back(0);
        out.push_back(0);
      } else {
        out.push_back(static_cast<uint8_t>((run - 3) << 2));
        out.push_back(0);
      }
      i += run;
      continue;
    }
    lit.push_back(in[i++]);
  }
  flush();
  return out;
}

std::string base64_encode(const std::vector<uint8_t>& b) {
  static const char* t = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string s;
  for (size_t i = 0; i < b.size(); i += 3) {
    uint32_t v = b[i] << 16;
    if (i + 1 < b.size()) v |= b[i + 1] << 8;
    if (i + 2 < b.size()) v |= b[i + 2];
    s += t[(v >> 18) & 63];
    s += t[(v >> 12) & 63];
    s += i + 1 < b.size() ? t[(v >> 6) & 63] : '=';
    s += i + 2 < b.size() ? t[v & 63] : '=';
    if (s.size() % 53 == 52) s += "\n\t\t\t\t";
  }
  return s;
}

namespace {

void be32(std::vector<uint8_t>& b, size_t at, uint32_t v) {
  store_be32(b.data() + at, v);
}
void be64(std::vector<uint8_t>& b, size_t at, uint64_t v) {
  store_be64(b.data() + at, v);
}

}  // namespace

std::vector<uint8_t> make_dmg(const std::vector<uint8_t>& disk, const DmgBuildOptions& o) {
  const uint64_t total = (disk.size() + 511) / 512;
  std::vector<uint8_t> padded = disk;
  padded.resize(total * 512, 0);
  std::vector<uint64_t> parts = o.partitions;
  uint64_t used = 0;
  for (uint64_t p : parts) used += p;
  if (used < total) parts.push_back(total - used);
  std::vector<uint8_t> fork;
  std::string entries;
  uint64_t first = 0;
  int id = -1;
  for (uint64_t psec : parts) {
    std::vector<std::vector<uint8_t>> chunks;  // 40-byte records
    for (uint64_t s = 0; s < psec; s += o.chunk_sectors) {
      uint64_t n = std::min(o.chunk_sectors, psec - s);
      const uint8_t* src = padded.data() + (first + s) * 512;
      size_t len = static_cast<size_t>(n * 512);
      uint32_t type = o.codec;
      std::vector<uint8_t> data;
      if (o.zero_chunks && is_zero(src, len)) {
        type = 0;
      } else if (type == 0x80000005) {
        uLongf cl = compressBound(static_cast<uLong>(len));
        data.resize(cl);
        compress2(data.data(), &cl, src, static_cast<uLong>(len), 6);
        data.resize(cl);
      } else if (type == 0x80000006) {
        unsigned cl = static_cast<unsigned>(len + len / 100 + 600);
        data.resize(cl);
        BZ2_bzBuffToBuffCompress(reinterpret_cast<char*>(data.data()), &cl,
                                 const_cast<char*>(reinterpret_cast<const char*>(src)),
                                 static_cast<unsigned>(len), 9, 0, 0);
        data.resize(cl);
      } else if (type == 0x80000004) {
        data = adc_encode(std::vector<uint8_t>(src, src + len));
      } else {
        data.assign(src, src + len);
      }
      std::vector<uint8_t> rec(40, 0);
      be32(rec, 0, type);
      be64(rec, 8, s);
      be64(rec, 16, n);
      be64(rec, 24, fork.size());
      be64(rec, 32, data.size());
      fork.insert(fork.end(), data.begin(), data.end());
      chunks.push_back(std::move(rec));
    }
    std::vector<uint8_t> term(40, 0);
    be32(term, 0, 0xffffffff);
    be64(term, 8, psec);
    chunks.push_back(term);
    std::vector<uint8_t> mish(204, 0);
    std::copy_n("mish", 4, mish.begin());
    be32(mish, 4, 1);
    be64(mish, 8, first);
    be64(mish, 16, psec);
    be64(mish, 24, 0);
    be32(mish, 32, 2056);
    be32(mish, 36, static_cast<uint32_t>(id + 1));
    be32(mish, 200, static_cast<uint32_t>(chunks.size()));
    for (auto& c : chunks) mish.insert(mish.end(), c.begin(), c.end());
    std::string name = "disk image (Apple_HFS : " + std::to_string(id + 1) + ")";
    entries +=
        "\t\t\t<dict>\n\t\t\t\t<key>Attributes</key>\n\t\t\t\t<string>0x0050</string>\n"
        "\t\t\t\t<key>CFName</key>\n\t\t\t\t<string>" +
        name +
        "</string>\n"
        "\t\t\t\t<key>Data</key>\n\t\t\t\t<data>\n\t\t\t\t" +
        base64_encode(mish) + "\n\t\t\t\t</data>\n\t\t\t\t<key>ID</key>\n\t\t\t\t<string>" +
        std::to_string(id) + "</string>\n\t\t\t\t<key>Name</key>\n\t\t\t\t<string>" + name +
        "</string>\n\t\t\t</dict>\n";
    first += psec;
    ++id;
  }
  std::string xml =
      "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
      "<!DOCTYPE plist PUBLIC \"-//Apple//DTD PLIST 1.0//EN\" "
      "\"http://www.apple.com/DTDs/PropertyList-1.0.dtd\">\n"
      "<plist version=\"1.0\">\n<dict>\n\t<key>resource-fork</key>\n\t<dict>\n\t\t<key>blkx</key>\n"
      "\t\t<array>\n" +
      entries + "\t\t</array>\n\t</dict>\n</dict>\n</plist>\n";
  std::vector<uint8_t> out = fork;
  uint64_t xml_off = out.size();
  out.insert(out.end(), xml.begin(), xml.end());
  std::vector<uint8_t> k(512, 0);
  std::copy_n("koly", 4, k.begin());
  be32(k, 4, 4);
  be32(k, 8, 512);
  be32(k, 12, 1);
  be64(k, 24, 0);
  be64(k, 32, fork.size());
  be32(k, 56, 1);
  be32(k, 60, 1);
  be64(k, 216, xml_off);
  be64(k, 224, xml.size());
  be32(k, 488, 1);
  be64(k, 492, total);
  out.insert(out.end(), k.begin(), k.end());
  return out;
}

}  // namespace vdisk::test
