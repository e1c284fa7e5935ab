#include "formats/core/format.h"

#include <algorithm>
#include <cctype>
#include <cstdio>

namespace vdisk {

Env& OpenOptions::environment() const {
  return env ? *env : Env::posix();
}

Env& CreateRequest::environment() const {
  return env ? *env : Env::posix();
}

void default_warning(const std::string& message) {
  std::fprintf(stderr, "vdisk: warning: %s\n", message.c_str());
}

std::string windows_path_to_posix(const std::string& path) {
  std::string p = path;
  std::replace(p.begin(), p.end(), '\\', '/');
  if (p.size() >= 2 && std::isalpha(static_cast<unsigned char>(p[0])) && p[1] == ':')
    p = p.substr(2);
  return p;
}

std::string resolve_sibling(const OpenOptions& opts, const std::string& referencing_file,
                            const std::string& name, const std::string& what) {
  std::string dir = path_dirname(referencing_file);
  if (name.empty()) {
    throw Error(ErrorKind::kCorrupt, referencing_file, std::nullopt, what + " name is empty");
  }
  std::string candidate = path_join(dir, name);
  if (opts.allow_outside_paths) return candidate;

  const std::string hint = " (pass --allow-outside-paths to allow it)";
  if (name[0] == '/') {
    throw Error(ErrorKind::kInvalidArgument, referencing_file, std::nullopt,
                what + " '" + name +
                    "' is an absolute path; refusing to read outside the image's folder" + hint);
  }
  size_t start = 0;
  while (start <= name.size()) {
    size_t slash = name.find('/', start);
    std::string comp =
        name.substr(start, slash == std::string::npos ? std::string::npos : slash - start);
    if (comp == "..") {
      throw Error(ErrorKind::kInvalidArgument, referencing_file, std::nullopt,
                  what + " '" + name + "' climbs out of the image's folder with '..'" + hint);
    }
    if (slash == std::string::npos) break;
    start = slash + 1;
  }
  Env& env = opts.environment();
  if (env.exists(candidate)) {
    std::string real_dir = env.real_path(dir);
    std::string real = env.real_path(candidate);
    if (real.compare(0, real_dir.size() + 1, real_dir + "/") != 0 && real != real_dir) {
      throw Error(
          ErrorKind::kInvalidArgument, referencing_file, std::nullopt,
          what + " '" + name + "' is a symlink to " + real + ", outside the image's folder" + hint);
    }
  }
  return candidate;
}

}  // namespace vdisk
