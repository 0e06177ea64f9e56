// Guest images: read-only directories made by ops/images/build (see
// docs/VMM.md), each with a kernel, an initramfs, a raw ext4 root and a
// manifest. Pure file reading; thread-safe.
#pragma once

#include <string>
#include <vector>

#include "control/result.h"

namespace vmm {

struct Image {
  std::string name;
  std::string dir;
  std::string kernel;   // absolute paths
  std::string initrd;
  std::string rootfs;
  std::string cmdline;
  std::string user;     // the login user
  int web_port = 80;    // the guest port https://VM.DOMAIN/ goes to
  std::string built_at;
};

// The image `name` under `images_dir`. The error lists the images there are
// ("no image 'foo'; the images are: debian, tiny").
control::Result<Image> LoadImage(const std::string& images_dir, const std::string& name);
// Every complete image (a directory with a readable manifest), by name.
std::vector<Image> ListImages(const std::string& images_dir);

}  // namespace vmm
