// The catalog of Amazon-owned base images, read from <dir>/catalog.json (written by
// tests/fixtures/make-base-images). Each image becomes a public AMI owned by the ECS
// AMI owner, with one completed, Amazon-owned root snapshot whose data file is the
// catalog's image file itself (never written: completed snapshots do not change, and
// EBS direct refuses Amazon-owned snapshots), plus its SSM public parameters.
//
// Accepted manifest (lenient, so the fixture and awsemu can evolve separately):
//   {"owner_id"?: "591542846629", "images": [{
//      "name", "file"|"path"|"image", "architecture"?, "boot_mode"?, "description"?,
//      "root_device_name"?, "volume_size"? (GiB; default: file size rounded up),
//      "ena_support"?, "tpm_support"?, "imds_support"?, "sriov_net_support"?,
//      "image_id"?, "snapshot_id"?, "creation_date"?,
//      "ssm_parameters"|"ssm"?: ["/aws/service/..."] or {"/aws/service/...": "value"}
//   }]}
// A parameter path ending in /image_id gets the AMI id, /image_name the name; any
// other gets the ECS "recommended" JSON document. "${image_id}" and "${image_name}" in
// given values are replaced. Ids default to stable hashes of the name, so restarts and
// reruns give the same ids.
#include <sys/stat.h>

#include <filesystem>

#include "aws/sigv4.h"
#include "base/files.h"
#include "emulator/service.h"

namespace amibake::emu {
namespace {

std::string replace_all(std::string text, const std::string& from, const std::string& to) {
  for (size_t pos = 0; (pos = text.find(from, pos)) != std::string::npos; pos += to.size()) {
    text.replace(pos, from.size(), to);
  }
  return text;
}

std::string ecs_document(const Image& img, const nlohmann::json& entry) {
  nlohmann::json doc = {{"schema_version", 1},
                        {"image_name", img.name},
                        {"image_id", img.id},
                        {"os", entry.value("os", "Amazon Linux")},
                        {"ecs_runtime_version", "Docker version 25.0.8"},
                        {"ecs_agent_version", "1.99.0"}};
  return doc.dump();
}

void add_parameter(Context& ctx, World& w, const std::string& name, const std::string& value) {
  Parameter p;
  p.name = name;
  p.value = value;
  p.data_type = value.rfind("ami-", 0) == 0 ? "aws:ec2:image" : "text";
  p.last_modified = ctx.now();
  w.parameters[name] = p;
}

// A region's id for a catalog resource: the host's region keeps the ids awsemu always
// gave (or the catalog's own), every other region gets its own stable hash, as AWS ids
// differ per region.
std::string regional_id(const std::string& prefix, const std::string& name,
                        const std::string& region, const std::string& given) {
  if (region == kRegion) {
    return given.empty() ? prefix + "-0" + aws::sha256_hex(prefix + ":" + name).substr(0, 16) : given;
  }
  return prefix + "-0" + aws::sha256_hex(prefix + ":" + region + ":" + name).substr(0, 16);
}

// Checks a catalog entry; returns its image file's absolute path.
Result<std::string> entry_file(const std::string& dir, const nlohmann::json& e) {
  std::string name = e.value("name", "");
  std::string file = e.value("file", e.value("path", e.value("image", "")));
  if (name.empty() || file.empty()) {
    return make_error(dir + "/catalog.json: an image entry lacks \"name\" or \"file\"",
                      "rebuild the catalog with tests/fixtures/make-base-images");
  }
  if (file[0] != '/') file = dir + "/" + file;
  struct stat st;
  if (::stat(file.c_str(), &st) != 0) {
    return make_error(dir + "/catalog.json: image file \"" + file + "\" is missing",
                      "rebuild the catalog with tests/fixtures/make-base-images");
  }
  return file;
}

void add_image(Context& ctx, const std::string& region, World& w, const std::string& dir,
               const nlohmann::json& e, const std::string& owner_id,
               const std::string& owner_alias) {
  std::string name = e.value("name", "");
  auto checked = entry_file(dir, e);
  if (!checked) return;  // load_catalog checked every entry before keeping it
  std::string file = *checked;
  struct stat st;
  if (::stat(file.c_str(), &st) != 0) st.st_size = 0;
  Image img;
  img.id = regional_id("ami", name, region, e.value("image_id", ""));
  std::string snap_id = regional_id("snap", name, region, e.value("snapshot_id", ""));
  // Every region's copy of the snapshot reads the same file: one layer.
  std::string layer_id = regional_id("snap", name, kRegion, e.value("snapshot_id", ""));
  img.owner_id = owner_id;
  img.owner_alias = owner_alias;
  img.name = name;
  img.virtualization_type = e.value("virtualization_type", "hvm");
  img.description = e.value("description", "Amazon Linux AMI Amazon ECS-Optimized");
  img.architecture = e.value("architecture", "x86_64");
  img.boot_mode = e.value("boot_mode", "");
  img.tpm_support = e.value("tpm_support", "");
  img.imds_support = e.value("imds_support", "");
  img.sriov_net_support = e.value("sriov_net_support", "simple");
  img.root_device_name = e.value("root_device_name", "/dev/xvda");
  img.ena_support = e.value("ena_support", true);
  img.state = "available";
  img.is_public = true;
  img.launch_groups = {"all"};
  double created = ctx.now();
  if (e.contains("creation_date")) parse_iso_time(e["creation_date"].get<std::string>(), &created);
  img.creation_time = created;
  int size = e.value("volume_size", static_cast<int>((st.st_size + kGiB - 1) / kGiB));
  Mapping root;
  root.device_name = img.root_device_name;
  root.has_ebs = true;
  root.snapshot_id = snap_id;
  root.volume_size = size;
  root.volume_type = e.value("volume_type", "gp3");
  root.delete_on_termination = true;
  root.encrypted = false;
  img.mappings.push_back(root);

  Snapshot s;
  s.id = snap_id;
  s.owner_id = owner_id;
  s.owner_alias = owner_alias;
  s.volume_size = size;
  s.state = "completed";
  s.start_time = created;
  s.ready_at = created;
  s.layer = layer_id;
  Layer layer;  // the image file itself, read in place
  layer.id = layer_id;
  layer.file = file;
  layer.external = true;
  s.description = "Amazon-owned root snapshot of " + name;
  // Keep tags and state the user added (e.g. none today) by replacing only catalog fields.
  w.images[img.id] = img;
  w.snapshots[s.id] = s;
  ctx.layers()[layer_id] = layer;

  nlohmann::json params = e.contains("ssm_parameters") ? e["ssm_parameters"]
                          : e.contains("ssm")          ? e["ssm"]
                                                       : nlohmann::json::array();
  auto fill = [&](const std::string& path, std::string value) {
    if (value.empty()) {
      if (path.ends_with("/image_id")) value = img.id;
      else if (path.ends_with("/image_name")) value = img.name;
      else value = ecs_document(img, e);
    }
    value = replace_all(replace_all(value, "${image_id}", img.id), "${image_name}", img.name);
    add_parameter(ctx, w, path, value);
  };
  if (params.is_object()) {
    for (const auto& [path, value] : params.items()) fill(path, value.is_string() ? value.get<std::string>() : "");
  } else if (params.is_array()) {
    for (const auto& p : params) {
      if (p.is_string()) fill(p.get<std::string>(), "");
      else if (p.is_object()) fill(p.value("name", p.value("path", "")), p.value("value", ""));
    }
  }
}

}  // namespace

void add_catalog_to_region(Context& ctx, const std::string& region, World& w) {
  for (const auto& c : ctx.catalog()) add_image(ctx, region, w, c.dir, c.entry, c.owner_id, c.owner_alias);
}

Status load_catalog(Context& ctx, const std::string& given_dir) {
  // Snapshot files are recorded by absolute path: the data folder outlives the cwd.
  std::error_code ec;
  std::string dir = std::filesystem::absolute(given_dir, ec).lexically_normal().string();
  if (ec) dir = given_dir;
  if (!dir.empty() && dir.back() == '/') dir.pop_back();
  AMIBAKE_ASSIGN(std::string text, read_file(dir + "/catalog.json"));
  auto j = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) {
    return make_error(dir + "/catalog.json: not valid JSON",
                      "rebuild the catalog with tests/fixtures/make-base-images");
  }
  nlohmann::json images = j.is_array() ? j : j.value("images", nlohmann::json::array());
  std::string owner = j.is_object() ? j.value("owner_id", std::string(kAmazonOwnerId)) : kAmazonOwnerId;
  std::string alias = j.is_object() ? j.value("owner_alias", std::string("amazon")) : "amazon";
  try {
    ctx.catalog().clear();
    for (const auto& e : images) {
      AMIBAKE_ASSIGN(std::string checked, entry_file(dir, e));
      (void)checked;
      ctx.catalog().push_back({e, dir, owner, alias});
    }
    // Every region that has a world, and the host's region; others get it when first named.
    ctx.world(kRegion);
    for (auto& [region, w] : ctx.regions()) add_catalog_to_region(ctx, region, w);
  } catch (const std::exception& ex) {
    return make_error(dir + "/catalog.json: " + ex.what(),
                      "rebuild the catalog with tests/fixtures/make-base-images");
  }
  return ok();
}

}  // namespace amibake::emu
