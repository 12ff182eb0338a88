// The bake pipeline, read top to bottom like a table of contents (kDirectSteps).
//
// Resume model: each step returns a JSON result that the driver journals; on
// --resume the driver replays the journal, skips steps with a result and reruns
// the first unfinished one. Steps that create AWS resources make that safe on
// their own: CopyImage and StartSnapshot carry client tokens derived from the
// base or the build, RegisterImage is found again by its (unique) name, and each
// resource is journaled as soon as its id is known. Local files (the fetched
// image) are checked on resume; if they are gone the fetch and install rerun.
//
// Interrupt model: the first Ctrl-C makes the next check_interrupt() fail with exit
// code 130; the driver then removes what this build made (the shared base copy
// excepted) and marks the journal. A second Ctrl-C stops that cleanup; whatever is
// left is listed, with `amibake cleanup <id>` to finish.
#include "bake/build.h"

#include <sys/stat.h>

#include <chrono>
#include <ctime>
#include <filesystem>
#include <vector>
#include <thread>

#include "aws/ec2.h"
#include "aws/sigv4.h"
#include "aws/sts.h"
#include "aws/waiter.h"
#include "bake/build_steps.h"
#include "bake/host_checks.h"
#include "bake/payload_install.h"
#include "base/files.h"
#include "base/log.h"

namespace amibake::bake {
namespace {

using nlohmann::json;

std::string utc_stamp() {
  std::time_t t = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y%m%d-%H%M%S", &tm);
  return buf;
}


// ---- step: resolve ----
// Resolves the base once per build: on resume the journaled base id is used, so a
// new ECS AMI published mid-build does not change what is being baked.
Result<json> step_resolve(StepContext& ctx) {
  const Recipe& r = ctx.options.recipe;
  AMIBAKE_ASSIGN(ResolvedBase base, resolve_base(ctx.client, r.base));
  AMIBAKE_TRY(check_against_base(r, base.image));
  // Before anything is created: an architecture without a datavol in this amibake.
  if (auto served = check_datavol_architecture(base.image.architecture); !served) {
    return served.error().wrap(base.image.image_id);
  }
  if (base.image.root_device_type != "ebs" || base.image.root_snapshot_id().empty()) {
    return make_error(base.image.image_id + ": root device is not an EBS snapshot", "", 2);
  }
  AMIBAKE_ASSIGN(auto who, aws::sts::get_caller_identity(ctx.client));
  ctx.events.info("base " + base.image.image_id + " (" + base.image.name + ") via " +
                  base.resolved_via);
  return json{{"base_image", base.image.image_id},
              {"base_name", base.image.name},
              {"base_owner", base.image.owner_id},
              {"account", who.account}};
}

}  // namespace

// ---- step: own-copy ----
// The EBS direct APIs do not read snapshots the account does not own, so a base
// owned by someone else (Amazon) is copied into the account once per base version.
// The copy is a shared cache: found again by tag, made idempotent by a client token
// derived from the base id, and not removed by a build's cleanup (`gc --copies` does).
// The chroot method uses it too when the base's own snapshot is not usable.
Result<std::string> find_or_copy_base(StepContext& ctx) {
  const json& res = ctx.results["resolve"];
  std::string base_id = res["base_image"];
  std::string image_id;
  if (res["base_owner"] == res["account"]) {
    ctx.events.info("base is owned by this account: no copy needed");
    return base_id;
  }
  aws::ec2::DescribeImagesRequest find;
  find.owners = {"self"};
  find.filters = {{"tag:" + std::string(kTagCopyOf), {base_id}}};
  AMIBAKE_ASSIGN(auto found, aws::ec2::describe_images(ctx.client, find));
  for (const auto& i : found) {
    if (i.state == "available" || i.state == "pending") image_id = i.image_id;
  }
  if (!image_id.empty()) {
    ctx.events.info("reusing this account's copy " + image_id + " of " + base_id);
  } else {
    aws::ec2::CopyImageRequest c;
    c.source_image_id = base_id;
    c.source_region = ctx.client.region();
    c.name = "amibake-base-" + base_id;
    c.description = "amibake: copy of " + base_id + " (" + std::string(res["base_name"]) +
                    ") for EBS direct reads";
    c.client_token = "amibake-copy-" + base_id;
    std::vector<aws::Tag> tags = {{kTagCopyOf, base_id}, {kTagRole, "base-copy"},
                                  {kTagTemporary, "false"}};
    c.tag_specifications = {{"image", tags}, {"snapshot", tags}};
    AMIBAKE_TRY(ctx.journal.intent(ctx.current_step, "image", c.client_token));
    AMIBAKE_ASSIGN(image_id, aws::ec2::copy_image(ctx.client, c));
    ctx.events.info("copying " + base_id + " into the account as " + image_id);
  }
  AMIBAKE_TRY(ctx.check_interrupt());
  AMIBAKE_TRY(aws::wait_image_available(ctx.client, image_id,
                                        ctx.wait_options(image_id, std::chrono::minutes(60))));
  AMIBAKE_TRY(ctx.check_interrupt());
  return image_id;
}

Result<json> describe_source(StepContext& ctx, const std::string& image_id) {
  AMIBAKE_ASSIGN(auto img, aws::ec2::describe_image(ctx.client, image_id));
  json mappings = json::array();
  for (const auto& m : img.block_device_mappings) {
    json j = {{"device", m.device_name}, {"virtual", m.virtual_name}, {"no_device", m.no_device}};
    if (m.ebs) {
      j["snapshot"] = m.ebs->snapshot_id;
      j["size"] = m.ebs->volume_size.value_or(0);
      j["type"] = m.ebs->volume_type;
      j["delete_on_termination"] = m.ebs->delete_on_termination.value_or(true);
      if (m.ebs->iops) j["iops"] = *m.ebs->iops;
      if (m.ebs->throughput) j["throughput"] = *m.ebs->throughput;
    }
    mappings.push_back(j);
  }
  json out = {{"image", image_id},
              {"root_snapshot", img.root_snapshot_id()},
              {"root_device", img.root_device_name},
              {"mappings", mappings},
              {"architecture", img.architecture},
              {"boot_mode", img.boot_mode},
              {"ena", img.ena_support},
              {"sriov", img.sriov_net_support},
              {"tpm", img.tpm_support},
              {"virtualization", img.virtualization_type}};
  // UEFI variables (secure boot keys) must travel with UEFI images.
  if (img.boot_mode == "uefi" || img.boot_mode == "uefi-preferred") {
    auto attr = aws::ec2::describe_image_attribute(ctx.client, image_id, "uefiData");
    if (attr && attr->uefi_data) out["uefi_data"] = *attr->uefi_data;
  }
  return out;
}

namespace {

Result<json> step_own_copy(StepContext& ctx) {
  AMIBAKE_ASSIGN(std::string image_id, find_or_copy_base(ctx));
  return describe_source(ctx, image_id);
}

// ---- step: register ----
aws::ec2::RegisterImageRequest register_request(StepContext& ctx) {
  const Recipe& r = ctx.options.recipe;
  const json& copy = base_source(ctx);
  const json& base = ctx.results["resolve"];
  std::string snapshot = new_root_snapshot(ctx);
  aws::ec2::Image base_image;
  base_image.image_id = base["base_image"];
  base_image.name = base["base_name"];
  std::string stamp = ctx.journal.state().start_string("stamp", utc_stamp());

  aws::ec2::RegisterImageRequest req;
  req.name = expand_name(r.name, base_image, stamp);
  req.description = expand_name(r.description, base_image, stamp);
  req.architecture = copy["architecture"];
  req.root_device_name = copy["root_device"];
  req.virtualization_type = copy.value("virtualization", "hvm");
  req.ena_support = r.attributes.ena_support.value_or(copy.value("ena", false));
  req.sriov_net_support = r.attributes.sriov_net_support.value_or(copy.value("sriov", ""));
  req.boot_mode = r.attributes.boot_mode.value_or(copy.value("boot_mode", ""));
  req.tpm_support = r.attributes.tpm_support.value_or(copy.value("tpm", ""));
  req.uefi_data = copy.value("uefi_data", "");
  req.imds_support = r.attributes.imds_support;
  // Base mappings (from the account's copy, whose snapshots the account owns), the
  // root pointing at the new snapshot; then the recipe's blank volumes.
  for (const auto& m : copy["mappings"]) {
    aws::ec2::BlockDeviceMapping bdm;
    bdm.device_name = m["device"];
    bdm.virtual_name = m.value("virtual", "");
    bdm.no_device = m.value("no_device", false);
    if (m.contains("snapshot")) {
      aws::ec2::EbsBlockDevice e;
      e.snapshot_id = m["snapshot"];
      e.volume_size = m["size"].get<int64_t>();
      e.volume_type = m["type"];
      e.delete_on_termination = m["delete_on_termination"].get<bool>();
      if (m.contains("iops")) e.iops = m["iops"].get<int64_t>();
      if (m.contains("throughput")) e.throughput = m["throughput"].get<int64_t>();
      if (bdm.device_name == req.root_device_name) {
        e.snapshot_id = snapshot;
        if (r.root_size_gib) e.volume_size = *r.root_size_gib;
      }
      bdm.ebs = e;
    }
    req.block_device_mappings.push_back(bdm);
  }
  for (const auto& v : r.volumes) {
    aws::ec2::BlockDeviceMapping bdm;
    bdm.device_name = v.device;
    aws::ec2::EbsBlockDevice e;
    e.volume_size = v.size_gib;
    e.volume_type = v.type;
    e.iops = v.iops;
    e.throughput = v.throughput;
    e.encrypted = v.encrypted;
    e.kms_key_id = v.kms_key_id;
    e.delete_on_termination = v.delete_on_termination;
    bdm.ebs = e;
    req.block_device_mappings.push_back(bdm);
  }
  auto tags = ctx.tags("image", /*temporary=*/false);
  tags.push_back({kTagFamily, r.family});
  tags.push_back({kTagBaseImage, base["base_image"]});
  tags.push_back({kTagRecipeHash, ctx.options.recipe_hash});
  for (const auto& [k, v] : r.image_tags) tags.push_back({k, v});
  req.tag_specifications = {{"image", tags}};
  return req;
}

// The image of `name` this build registered, "" when there is none; an error when the
// name is taken by something else.
Result<std::string> find_registered(StepContext& ctx, const std::string& name) {
  // AMI names are unique per account and region: an image of this name made by this
  // build means an earlier attempt registered it.
  aws::ec2::DescribeImagesRequest find;
  find.owners = {"self"};
  find.filters = {{"name", {name}}};
  AMIBAKE_ASSIGN(auto found, aws::ec2::describe_images(ctx.client, find));
  std::string image_id;
  for (const auto& i : found) {
    if (aws::ec2::find_tag(i.tags, kTagBuildId) != ctx.build_id) {
      return make_error("image name '" + name + "' is taken by " + i.image_id,
                        "change image.name in the recipe (use {date} to make names unique)", 1);
    }
    image_id = i.image_id;
  }
  return image_id;
}

Result<json> step_register(StepContext& ctx) {
  auto req = register_request(ctx);
  AMIBAKE_ASSIGN(std::string image_id, find_registered(ctx, req.name));
  if (!image_id.empty()) {
    ctx.events.info("found " + image_id + " registered by an earlier attempt");
  } else {
    auto registered = aws::ec2::register_image(ctx.client, req);
    if (!registered && got_no_answer(registered.error())) {
      // Registered or not? The name tells.
      AMIBAKE_ASSIGN(image_id, find_registered(ctx, req.name));
      if (image_id.empty()) return registered.error();
      ctx.events.info("RegisterImage got no answer, but registered " + image_id);
    } else {
      AMIBAKE_ASSIGN(image_id, std::move(registered));
      ctx.events.info("registered " + image_id + " '" + req.name + "'");
    }
  }
  AMIBAKE_TRY(ctx.record("register", "image", image_id, false));
  return json{{"image", image_id}, {"name", req.name}};
}

// ---- step: verify ----
// Reads the image back and checks what matters to users: available, root on the
// new snapshot, every recipe volume mapped as asked, IMDSv2 required.
Result<json> step_verify(StepContext& ctx) {
  std::string image_id = ctx.results["register"]["image"];
  AMIBAKE_ASSIGN(auto img, aws::wait_image_available(
                               ctx.client, image_id,
                               ctx.wait_options(image_id, std::chrono::minutes(30))));
  std::string want_root = new_root_snapshot(ctx);
  auto fail = [&](const std::string& what) {
    return make_error(image_id + ": verification failed: " + what,
                      "report this; the image is kept for inspection");
  };
  if (img.root_snapshot_id() != want_root) {
    return fail("root snapshot is " + img.root_snapshot_id() + ", expected " + want_root);
  }
  for (const auto& v : ctx.options.recipe.volumes) {
    bool found = false;
    for (const auto& m : img.block_device_mappings) {
      if (normalise_device(m.device_name) != normalise_device(v.device) || !m.ebs) continue;
      found = m.ebs->volume_size.value_or(0) == v.size_gib && m.ebs->volume_type == v.type &&
              m.ebs->snapshot_id.empty();
    }
    if (!found) return fail("mapping " + v.device + " is missing or differs from the recipe");
  }
  if (ctx.options.recipe.attributes.imds_support == "v2.0" && img.imds_support != "v2.0") {
    return fail("ImdsSupport is '" + img.imds_support + "', expected v2.0");
  }
  return json{{"image", image_id}, {"state", img.state}};
}

}  // namespace

namespace {

using StepFn = Result<json> (*)(StepContext&);
struct Step {
  const char* name;
  const char* what;
  StepFn run;
};

// Publishing (publish.cc): checked right after resolve, run after verify; every build
// ends with kPublishSteps, and `amibake publish` (BuildOptions::publish_ami) runs only
// kPublishCheck and them, for an existing AMI.
constexpr Step kPublishCheck = {"publish-check",
                                "check every publish target exists and can take the AMI",
                                step_publish_check};
constexpr Step kPublishSteps[] = {
    {"copy", "copy the AMI to the other publish regions", step_copy},
    {"share", "share the AMIs with the recipe's accounts, organizations and OUs", step_share},
    {"ssm", "point the SSM parameter at the new AMI in every region", step_ssm},
    {"launch-templates", "add a launch template version with the new AMI", step_launch_templates},
    {"batch", "move the Batch compute environments to the new AMI", step_batch},
    {"deprecate", "schedule the AMIs' deprecation", step_deprecate},
};

// The direct method, in order, before kPublishSteps. Reading this table tells the whole build.
constexpr Step kDirectSteps[] = {
    {"resolve", "resolve the base AMI", step_resolve},
    kPublishCheck,
    {"own-copy", "own a copy of the base (EBS direct cannot read public snapshots)", step_own_copy},
    {"fetch", "list the root snapshot's written blocks (--fetch full: download them all)",
     step_fetch},
    {"install", "install datavol into the root filesystem (lazy: fetching only what it reads)",
     step_install},
    {"upload", "upload the changed blocks as a new snapshot", step_upload},
    {"register", "register the AMI", step_register},
    {"verify", "read the AMI back and check it", step_verify},
};

// The chroot method (chroot.cc), in order: the manual process on an EC2 host.
constexpr Step kChrootSteps[] = {
    {"host", "learn this EC2 host's instance, zone and region (IMDSv2)", step_host},
    {"resolve", "resolve the base AMI", step_resolve},
    kPublishCheck,
    {"source", "pick the root snapshot to start from (the base's, or the account's copy)",
     step_source},
    {"volume", "create a volume from the root snapshot in this host's zone", step_volume},
    {"attach", "attach the volume to this host and find its device by volume id", step_attach},
    {"install", "install datavol into the volume's root filesystem", step_install_device},
    {"detach", "detach the volume", step_detach},
    {"snapshot", "snapshot the volume", step_snapshot},
    {"remove-volume", "delete the temporary volume", step_remove_volume},
    {"register", "register the AMI", step_register},
    {"verify", "read the AMI back and check it", step_verify},
};


// Looks for an AMI made from the same base and recipe.
Result<std::string> find_existing(StepContext& ctx) {
  aws::ec2::DescribeImagesRequest find;
  find.owners = {"self"};
  find.filters = {{"tag:" + std::string(kTagBaseImage), {ctx.results["resolve"]["base_image"]}},
                  {"tag:" + std::string(kTagRecipeHash), {ctx.options.recipe_hash}},
                  {"state", {"available"}}};
  AMIBAKE_ASSIGN(auto found, aws::ec2::describe_images(ctx.client, find));
  return found.empty() ? std::string() : found.front().image_id;
}

json make_manifest(StepContext& ctx, const std::map<std::string, double>& seconds) {
  json m = {{"build_id", ctx.build_id},
            {"region", ctx.client.region()},
            {"method", ctx.options.method},
            {"recipe", ctx.options.recipe.path},
            {"recipe_hash", ctx.options.recipe_hash},
            {"steps", ctx.results},
            {"seconds", seconds}};
  if (ctx.results.count("register")) m["ami"] = ctx.results["register"]["image"];
  if (!new_root_snapshot(ctx).empty()) m["root_snapshot"] = new_root_snapshot(ctx);
  if (ctx.results.count("resolve")) m["base_image"] = ctx.results["resolve"]["base_image"];
  return m;
}

Result<Journal> open_or_create_journal(const BuildOptions& o, const std::string& dir,
                                       aws::AwsClient& client) {
  if (!o.resume_id.empty()) {
    AMIBAKE_ASSIGN(Journal j, Journal::open(dir, o.resume_id));
    if (j.state().finished) {
      return make_error("build " + o.resume_id + " already finished", "nothing to resume", 0);
    }
    if (j.state().cleaned) {
      return make_error("build " + o.resume_id + " was cleaned up", "start a new build", 1);
    }
    std::string started_method = j.state().start_string("method", "direct");
    if (started_method != o.method) {
      return make_error("build " + o.resume_id + " was started with --method " + started_method,
                        "resume it with --method " + started_method + " (or without --method)", 2);
    }
    // Resuming with a different recipe would mix two builds' results.
    std::string started_with = j.state().start_string("recipe_hash");
    if (!started_with.empty() && started_with != o.recipe_hash) {
      return make_error("build " + o.resume_id + ": the recipe changed since the build started",
                        "resume with the recipe as it was, or start a new build (and `amibake cleanup " +
                            o.resume_id + "` the old one)",
                        2);
    }
    return j;
  }
  json start = {{"recipe", o.recipe.path},
                {"recipe_hash", o.recipe_hash},
                {"method", o.method},
                {"region", client.region()},
                {"work_dir", o.work_dir.empty() ? default_work_dir() : o.work_dir},
                {"stamp", utc_stamp()}};
  // cleanup and gc look for the attached volume's device where the build did.
  if (o.method == "chroot") start["device_dir"] = o.device_dir;
  if (o.method == "direct") start["fetch"] = o.fetch;
  if (!o.publish_ami.empty()) start["publish_ami"] = o.publish_ami;
  return Journal::create(dir, Journal::new_build_id(), start);
}

}  // namespace

aws::WaitOptions StepContext::wait_options(const std::string& what,
                              std::chrono::minutes timeout) {
  aws::WaitOptions w;
  w.timeout = timeout;
  w.interval = std::chrono::milliseconds(std::stoi(env_or("AMIBAKE_POLL_MS", "2000")));
  w.tolerated_error_codes = {"InvalidAMIID.NotFound", "InvalidSnapshot.NotFound",
                             "InvalidVolume.NotFound"};
  w.on_progress = [this, what](const aws::WaitState& s) {
    events.info(what + ": " + s.state + (s.detail.empty() ? "" : " " + s.detail));
  };
  w.should_stop = [this] { return check_interrupt(); };
  w.sleep = [this](std::chrono::milliseconds d) {
    // Sleep in short slices so Ctrl-C is seen at once (should_stop then ends the wait).
    auto end = std::chrono::steady_clock::now() + d;
    while (std::chrono::steady_clock::now() < end && interrupts.load() == 0) {
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
  };
  return w;
}

Result<aws::AwsClient*> StepContext::client_in(const std::string& region) {
  if (region == client.region()) return &client;
  auto it = region_clients.find(region);
  if (it != region_clients.end()) return it->second.get();
  if (!options.region_client) {
    return make_error("region " + region + " cannot be reached from this build",
                      "this is a defect in amibake: the command gave no client for other regions");
  }
  AMIBAKE_ASSIGN(auto made, options.region_client(region));
  aws::AwsClient* raw = made.get();
  region_clients[region] = std::move(made);
  return raw;
}

Status StepContext::check_interrupt() const {
  if (interrupts.load() == 0) return ok();
  return make_error("interrupted", "", 130);
}

std::vector<aws::Tag> StepContext::tags(const std::string& role, bool temporary) const {
  return {{kTagBuildId, build_id}, {kTagRole, role}, {kTagTemporary, temporary ? "true" : "false"}};
}

Status StepContext::record(const std::string& step, const std::string& kind,
                           const std::string& id, bool temporary) {
  for (const auto& r : journal.state().resources) {
    if (r.id == id) return ok();
  }
  return journal.created({kind, id, client.region(), step, temporary, false});
}

std::string recipe_identity(const Recipe& r) {
  json j = {{"base", {r.base.variant, r.base.ami_id, r.base.ssm_parameter, r.base.name_filter}},
            {"root_size", r.root_size_gib.value_or(0)},
            {"imds", r.attributes.imds_support},
            {"boot_mode", r.attributes.boot_mode.value_or("")},
            {"ena", r.attributes.ena_support ? (*r.attributes.ena_support ? 1 : 0) : -1},
            {"sriov", r.attributes.sriov_net_support.value_or("")},
            {"tpm", r.attributes.tpm_support.value_or("")},
            {"image_tags", r.image_tags},
            {"snapshot_tags", r.snapshot_tags}};
  for (const auto& v : r.volumes) {
    const auto& d = v.datavol;
    j["volumes"].push_back({v.device, v.size_gib, v.type, v.iops.value_or(0),
                            v.throughput.value_or(0), v.encrypted, v.kms_key_id,
                            v.delete_on_termination, d.mount, d.filesystem, d.label,
                            d.mkfs_options, d.mount_options, d.owner,
                            d.mode ? static_cast<int>(*d.mode) : -1, d.wait_seconds, d.grow,
                            d.required_by});
  }
  return aws::sha256_hex(j.dump()).substr(0, 32);
}

Result<BuildResult> run_build(aws::AwsClient& client, const BuildOptions& options, Events& events,
                              const std::atomic<int>& interrupts) {
  std::vector<Step> steps;
  if (!options.publish_ami.empty()) {
    steps = {kPublishCheck};
  } else if (options.method == "direct") {
    steps.assign(std::begin(kDirectSteps), std::end(kDirectSteps));
  } else if (options.method == "chroot") {
    steps.assign(std::begin(kChrootSteps), std::end(kChrootSteps));
  } else {
    return make_error("build: unknown method '" + options.method + "'", "use direct or chroot", 2);
  }
  steps.insert(steps.end(), std::begin(kPublishSteps), std::end(kPublishSteps));
  std::string journal_dir = options.journal_dir.empty() ? Journal::default_dir() : options.journal_dir;
  std::string work_dir = options.work_dir.empty() ? default_work_dir() : options.work_dir;
  AMIBAKE_ASSIGN(Journal journal, open_or_create_journal(options, journal_dir, client));
  StepContext ctx{client, options, events, interrupts, journal, journal.state().build_id,
                  work_dir + "/" + journal.state().build_id, {}, {}, {}};
  if (options.on_build_id) options.on_build_id(ctx.build_id);
  AMIBAKE_TRY(make_dirs(ctx.work, 0700));
  ctx.results = journal.state().step_results;
  if (!options.publish_ami.empty() && !ctx.results.count("register")) {
    // The publish steps read the AMI from "register", as after a bake.
    ctx.results["register"] = {{"image", options.publish_ami}, {"published_existing", true}};
    AMIBAKE_TRY(journal.step_done("register", ctx.results["register"]));
  }
  events.step("build", (options.resume_id.empty() ? "starting build " : "resuming build ") +
                           ctx.build_id + " in " + client.region() + " (journal " +
                           journal.path() + ")");

  std::map<std::string, double> seconds;
  BuildResult result;
  result.build_id = ctx.build_id;
  result.region = client.region();
  for (const Step& step : steps) {
    if (ctx.results.count(step.name)) {
      events.step(step.name, "done earlier (journal)");
      continue;
    }
    events.step(step.name, step.what);
    ctx.current_step = step.name;
    auto t0 = std::chrono::steady_clock::now();
    Status go = ctx.check_interrupt();
    Result<json> r = go ? step.run(ctx) : Result<json>(go.error());
    seconds[step.name] = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (!r) {
      Error e = r.error().wrap("build " + ctx.build_id + ": " + step.name);
      // A refusal of a fresh build (the recipe does not fit this base, image or host) is
      // final: resuming cannot help. A resumed build's refusal (another host, say) is not
      // a reason to remove what the build made.
      bool refused = e.code == 2 && options.resume_id.empty();
      // A build that stops, to be resumed or cleaned up later, releases its claim on the
      // recipe so a twin waiting for it bakes now (twin.cc).
      if (e.code != 130 && !refused) release_claims(ctx);
      if (e.code == 130) {
        events.step("interrupted", "removing what build " + ctx.build_id + " made");
        (void)journal.interrupted();
        auto c = cleanup_build(client, journal_dir, ctx.build_id, events, &interrupts,
                               options.region_client);
        if (!c || !c->failed.empty() || interrupts.load() > 1) {
          e.hint = "some resources may remain: run `amibake cleanup " + ctx.build_id + "`";
        } else {
          e.hint = "nothing was left behind";
        }
      } else if (refused) {
        // What the build made goes now, and the hint says whether anything is left.
        std::string left;
        if (!journal.state().live_resources().empty()) {
          events.step("refused", "removing what build " + ctx.build_id + " made");
          auto c = cleanup_build(client, journal_dir, ctx.build_id, events, &interrupts,
                                 options.region_client);
          if (!c || !c->failed.empty()) {
            left = "; some resources may remain: run `amibake cleanup " + ctx.build_id + "`";
          }
        } else {
          (void)journal.cleaned();
        }
        std::string fix = e.hint.empty() ? "fix the recipe and build again" : e.hint;
        e.hint = fix + (left.empty() ? " (nothing of this build is left in AWS)" : left);
      } else if (journal.state().live_resources().empty()) {
        // Nothing exists to resume from or clean up (the shared base copy is not the build's).
        std::string again = "nothing of this build was created in AWS: build again";
        e.hint = e.hint.empty() ? again : e.hint + "; " + again;
      } else if (e.hint.empty()) {
        e.hint = "resume with `amibake build --resume " + ctx.build_id +
                 "`, or remove what it made with `amibake cleanup " + ctx.build_id + "`";
      } else {
        e.hint += "; then resume with `amibake build --resume " + ctx.build_id +
                  "`, or remove what it made with `amibake cleanup " + ctx.build_id + "`";
      }
      return e;
    }
    ctx.results[step.name] = *r;
    AMIBAKE_TRY(journal.step_done(step.name, *r));
    std::string reuse = r->value("reuse_image", "");
    if (std::string(step.name) == "resolve" && !options.force) {
      AMIBAKE_ASSIGN(reuse, find_existing(ctx));
      if (!reuse.empty()) {
        events.info(reuse +
                    " was baked from the same base and recipe; reusing it (--force builds anew)");
      } else {
        // Another build of this recipe already uploading: wait for it rather than repeat it.
        AMIBAKE_ASSIGN(std::string twin, find_twin(ctx, /*claimed=*/false));
        if (!twin.empty()) {
          AMIBAKE_ASSIGN(reuse, wait_for_twin(ctx, twin));
        }
      }
    }
    if (!reuse.empty()) {
      // A step yielded to an AMI of the same base and recipe: what this build made so far
      // (a chroot volume) goes, and the build ends with that AMI.
      if (!journal.state().live_resources().empty()) {
        AMIBAKE_ASSIGN(auto c, cleanup_build(client, journal_dir, ctx.build_id, events,
                                             &interrupts, options.region_client));
        if (!c.failed.empty()) {
          return make_error("build " + ctx.build_id + ": not removed: " + c.failed.front(),
                            "run `amibake cleanup " + ctx.build_id + "`");
        }
      }
      if (!options.no_publish && options.recipe.publish.any()) {
        events.info("publish steps skipped: " + reuse +
                    " was published when it was built; `amibake publish` publishes it again");
      }
      result.ami_id = reuse;
      result.reused_existing = true;
      AMIBAKE_TRY(journal.finished({{"ami", reuse}, {"reused", true}}));
      std::filesystem::remove_all(ctx.work);
      return result;
    }
  }
  result.ami_id = ctx.results["register"]["image"];
  result.manifest = make_manifest(ctx, seconds);
  result.manifest["published"] = publish_summary(ctx);
  result.manifest_path = journal_dir + "/" + ctx.build_id + ".manifest.json";
  AMIBAKE_TRY(write_file_atomic(result.manifest_path, result.manifest.dump(2) + "\n", 0600));
  AMIBAKE_TRY(journal.finished({{"ami", result.ami_id}}));
  // The local image is only needed to resume; a finished build drops it.
  std::filesystem::remove_all(ctx.work);
  events.step("done", result.ami_id + " in " + result.region + " (manifest " +
                          result.manifest_path + ")");
  if (options.method == "direct" && ctx.results.count("upload")) {
    // What crossed the network, the figure lazy fetch exists for.
    // (A lazy install that fell back to the full fetch keeps that fetch's figures.)
    const json& install = ctx.results["install"];
    const json& in = install.value("mode", "") == "lazy" ? install
                     : install.contains("fetch")         ? install["fetch"]
                                                         : ctx.results["fetch"];
    const json& up = ctx.results["upload"];
    events.info("moved: fetched " + std::to_string(in.value("blocks_fetched", uint64_t{0})) +
                " of " + std::to_string(in.value("blocks_listed", uint64_t{0})) +
                " written blocks (" + std::to_string(in.value("blocks_prefetched", uint64_t{0})) +
                " by prefetch, " + std::to_string(in.value("bytes_fetched", uint64_t{0}) >> 20) +
                " MiB down), uploaded " + std::to_string(up.value("changed_blocks", uint64_t{0})) +
                " (" + std::to_string(up.value("bytes", uint64_t{0}) >> 20) + " MiB up)");
  }

  return result;
}

}  // namespace amibake::bake
