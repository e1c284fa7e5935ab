// The FUSE driver: any image, read-only, either as a block view (disk.raw,
// one file per partition, info.json) or as the file tree of the filesystem it
// holds. The driver serves a FileTree; the block view is a FileTree too, so
// one set of FUSE operations covers both modes.
//
// Dependency direction: cli -> mount -> formats, views.
#pragma once

#include <functional>
#include <memory>
#include <string>

#include "formats/core/block_device.h"
#include "formats/core/file_tree.h"

namespace vdisk::mount {

enum class Mode : uint8_t { kAuto, kBlock, kTree };
// "auto", "block" or "tree"; throws Error(kInvalidArgument) otherwise.
Mode parse_mode(const std::string& text);

struct ViewRequest {
  BlockDevicePtr disk;
  std::string image;  // the image path, used in messages and as the label
  Mode mode = Mode::kAuto;
  // Modification time every block-view node reports (the image file's).
  Timestamp mtime;
  // Receives one-line warnings (a damaged partition table, a filesystem that
  // auto mode could not open).
  std::function<void(const std::string&)> warn;
};

// The block view: a root directory holding `disk.raw` (the whole virtual
// disk), `p1`, `p2`, … (one per MBR/GPT data partition, Linux numbering) and
// `info.json` (what `vdisk info --output json` prints for `disk`). Read-only and thread-safe.
std::unique_ptr<FileTree> make_block_view(const ViewRequest& req);

// The view `req.mode` asks for. kTree throws Error(kUnsupported) when no
// filesystem vdisk knows is found; kAuto picks the tree when one opens and the
// block view otherwise.
std::unique_ptr<FileTree> make_view(const ViewRequest& req);

// Checks that `mountpoint` can take a mount: it exists, is a directory, is
// empty and is not already a mount point (a stale FUSE mount included).
// Returns its canonical absolute path; throws Error(kInvalidArgument or
// kNotFound) naming the mountpoint and what is wrong.
std::string check_mountpoint(const std::string& mountpoint);

struct ServeOptions {
  std::string mountpoint;  // canonical absolute path (check_mountpoint)
  std::string fsname;      // shown by mount(8) and df (the image path)
  bool allow_other = false;
  // Install SIGINT/SIGTERM/SIGHUP handlers that end the loop and unmount.
  bool handle_signals = true;
  unsigned max_threads = 16;
  // Where errors inside the image (EIO answers) are reported: stderr, or
  // syslog for a daemon whose stderr is /dev/null.
  bool log_to_syslog = false;
};

// Mounts `view` read-only and serves it from several threads until the
// filesystem is unmounted (or, with handle_signals, SIGINT/SIGTERM/SIGHUP
// arrive; the mount is then removed). `on_ready` runs once the mount is live,
// before the first request is served. Throws Error when the mount fails. No
// exception ever crosses into libfuse: every operation maps vdisk::Error to
// an errno in one place.
void serve(std::shared_ptr<const FileTree> view, const ServeOptions& opts,
           const std::function<void()>& on_ready);

// serve() in a background process: forks, and returns in the parent once the
// child's mount is live; throws Error with the child's message when the mount
// fails. The child detaches (new session, cwd "/", standard streams on
// /dev/null) and exits when the filesystem is unmounted.
void serve_in_background(std::shared_ptr<const FileTree> view, const ServeOptions& opts);

// Unmounts a vdisk mount: umount2 as root, `fusermount3 -u` otherwise.
// Refuses a path that is not a mount point or is not a vdisk (fuse.vdisk)
// mount, and one a loop device still holds (a file under it is the device's
// backing file): the message names the device ("/dev/loop0 is attached to
// MNT/p2: losetup -d it first"). Throws Error naming the mountpoint.
void unmount(const std::string& mountpoint);

}  // namespace vdisk::mount
