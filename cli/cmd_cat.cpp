// vdisk cat IMAGE PATH: write a file of the file system inside an image to
// standard output (symbolic links inside the image are followed).
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <vector>

#include "cli/cli.h"
#include "cli/tree_open.h"
#include "formats/core/error.h"

namespace vdisk::cli {

namespace {

// Follows symlinks inside the tree (at most 40, like the kernel).
NodeId resolve_following(const OpenedTree& t, std::string path) {
  for (int hops = 0; hops <= 40; ++hops) {
    NodeId node = tree_path(t, path);
    if (t.tree->stat(node).type != NodeType::kSymlink) return node;
    std::string target = t.tree->readlink(node);
    if (!target.empty() && target[0] == '/') {
      path = target;
    } else {
      size_t slash = path.find_last_of('/');
      path = (slash == std::string::npos ? std::string() : path.substr(0, slash)) + "/" + target;
    }
    // Normalise "." and ".." so links cannot climb above the root.
    std::vector<std::string> parts;
    size_t start = 0;
    while (start <= path.size()) {
      size_t s = path.find('/', start);
      std::string c = path.substr(start, s == std::string::npos ? std::string::npos : s - start);
      start = s == std::string::npos ? path.size() + 1 : s + 1;
      if (c.empty() || c == ".") continue;
      if (c == "..") {
        if (!parts.empty()) parts.pop_back();
        continue;
      }
      parts.push_back(c);
    }
    path.clear();
    for (auto& c : parts) path += "/" + c;
  }
  throw Error(ErrorKind::kInvalidArgument, t.image, std::nullopt,
              "too many levels of symbolic links");
}

}  // namespace

int cmd_cat(const std::vector<std::string>& args) {
  po::options_description desc("options");
  add_open_options(desc);
  add_tree_options(desc);
  const std::vector<Positional> pos = {
      {"image", "IMAGE", "image", "the image (IMAGE@pN: its partition N; IMAGE@pN:PATH)"},
      {"path", "PATH", "path", "file inside the image", false},
  };
  po::variables_map vm;
  if (!parse_args("cat", "[--partition N] IMAGE PATH | IMAGE@pN:PATH", desc, pos, args, vm))
    return kExitOk;
  OpenedTree t = open_tree_from_args(vm, "image");
  std::string path = command_path(t, vm, "path", "");
  if (path.empty()) throw UsageError("cat needs the PATH of a file inside the image");
  NodeId node = resolve_following(t, path);
  NodeStat st = t.tree->stat(node);
  if (st.type != NodeType::kRegular) {
    throw Error(ErrorKind::kInvalidArgument, t.image, std::nullopt,
                path + " is not a regular file");
  }
  std::vector<uint8_t> buf(1 << 20);
  uint64_t off = 0;
  while (off < st.size) {
    if (cancel_flag().load()) throw Error(ErrorKind::kInterrupted, t.image, off, "interrupted");
    size_t n = t.tree->read(node, off, buf.data(), buf.size());
    if (n == 0) break;
    size_t done = 0;
    while (done < n) {
      ssize_t w = ::write(1, buf.data() + done, n - done);
      if (w < 0) {
        if (errno == EINTR) continue;
        if (errno == EPIPE) {
          // The reader went away (`vdisk cat … | head`): end the way cat(1)
          // does, by SIGPIPE, without an error message.
          std::signal(SIGPIPE, SIG_DFL);
          std::raise(SIGPIPE);
        }
        throw_errno("<stdout>", std::nullopt, "write failed", errno);
      }
      done += static_cast<size_t>(w);
    }
    off += n;
  }
  return kExitOk;
}

}  // namespace vdisk::cli
