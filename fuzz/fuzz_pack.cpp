// pack_fuzz_input IN OUT: writes IN as a packed fuzz input (see unpack_input in
// fuzz_exercise.h): only its non-zero 512-byte sectors, coalesced, so a
// 9 MiB VHDX becomes a few KiB the fuzzer can mutate quickly. Used by
// scripts/fuzz-seeds; `pack_fuzz_input -d IN OUT` unpacks (to look at a crash).
#include <cstdio>
#include <fstream>
#include <iterator>

#include "fuzz/fuzz_exercise.h"

namespace {
void put_le(std::vector<uint8_t>& out, uint64_t v, int n) {
  for (int i = 0; i < n; ++i) out.push_back(static_cast<uint8_t>(v >> (8 * i)));
}
}  // namespace

int main(int argc, char** argv) {
  bool unpack = argc == 4 && std::string(argv[1]) == "-d";
  if (argc != 3 && !unpack) {
    std::fprintf(stderr, "usage: pack_fuzz_input [-d] IN OUT\n");
    return 2;
  }
  std::ifstream in(argv[argc - 2], std::ios::binary);
  std::vector<uint8_t> img((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::vector<uint8_t> out;
  if (unpack) {
    out = vdisk::fuzz::unpack_input(img.data(), img.size());
  } else {
    if (img.size() > vdisk::fuzz::kMaxPackedSize) {
      std::fprintf(stderr, "pack_fuzz_input: %s is larger than %llu bytes\n", argv[1],
                   static_cast<unsigned long long>(vdisk::fuzz::kMaxPackedSize));
      return 2;
    }
    out.assign(vdisk::fuzz::kPackMagic, vdisk::fuzz::kPackMagic + 8);
    put_le(out, img.size(), 8);
    constexpr size_t kSector = 512;
    size_t i = 0;
    while (i < img.size()) {
      auto zero = [&](size_t at) {
        size_t end = std::min(img.size(), at + kSector);
        for (size_t k = at; k < end; ++k)
          if (img[k]) return false;
        return true;
      };
      if (zero(i)) {
        i += kSector;
        continue;
      }
      size_t j = i;
      while (j < img.size() && !zero(j)) j += kSector;
      j = std::min(j, img.size());
      put_le(out, i, 8);
      put_le(out, j - i, 4);
      out.insert(out.end(), img.begin() + i, img.begin() + j);
      i = j;
    }
  }
  std::ofstream o(argv[argc - 1], std::ios::binary);
  o.write(reinterpret_cast<const char*>(out.data()), static_cast<std::streamsize>(out.size()));
  return o ? 0 : 1;
}
