#include "vmm/images.h"

#include <algorithm>
#include <filesystem>
#include <fstream>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

namespace vmm {

namespace fs = std::filesystem;

namespace {

control::Result<Image> Read(const fs::path& dir) {
  std::ifstream in(dir / "manifest.json");
  if (!in) return control::NotFoundError("no manifest in " + dir.string());
  nlohmann::json m;
  try {
    in >> m;
    Image img;
    img.name = m.at("name").get<std::string>();
    img.dir = dir.string();
    img.kernel = (dir / m.at("kernel").get<std::string>()).string();
    img.initrd = (dir / m.at("initrd").get<std::string>()).string();
    img.rootfs = (dir / m.at("rootfs").get<std::string>()).string();
    img.cmdline = m.at("cmdline").get<std::string>();
    img.user = m.value("user", "root");
    img.web_port = m.value("web_port", 80);
    img.built_at = m.value("built_at", "");
    for (const auto* f : {&img.kernel, &img.initrd, &img.rootfs}) {
      if (!fs::exists(*f)) return control::InternalError(fmt::format("image {} is missing {}", img.name, *f));
    }
    return img;
  } catch (const std::exception& e) {
    return control::InternalError(fmt::format("image manifest {} is unreadable: {}", (dir / "manifest.json").string(),
                                              e.what()));
  }
}

}  // namespace

std::vector<Image> ListImages(const std::string& images_dir) {
  std::vector<Image> out;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(images_dir, ec)) {
    if (!e.is_directory() || e.path().filename().string().find('.') != std::string::npos) continue;
    auto img = Read(e.path());
    if (img) out.push_back(*img);
  }
  std::sort(out.begin(), out.end(), [](const Image& a, const Image& b) { return a.name < b.name; });
  return out;
}

control::Result<Image> LoadImage(const std::string& images_dir, const std::string& name) {
  bool plain = !name.empty() && std::all_of(name.begin(), name.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-';
  });
  if (plain && fs::is_directory(fs::path(images_dir) / name)) return Read(fs::path(images_dir) / name);
  std::string names;
  for (const auto& img : ListImages(images_dir)) names += (names.empty() ? "" : ", ") + img.name;
  if (names.empty()) {
    return control::NotFoundError(fmt::format("no image '{}', and no images are built; the operator builds them with "
                                              "'exed image build tiny' (ops/up does it on first run)",
                                              name));
  }
  return control::NotFoundError(fmt::format("no image '{}'; the images are: {}", name, names));
}

}  // namespace vmm
