// Incremental snapshots: snapshot content as a chain of layers, as EBS stores it.
//
// The problem. EBS snapshots are incremental: a snapshot stores only the blocks that
// differ from the one it was made from, so copying a 30 GiB image, starting a child
// snapshot or making a volume costs what changed, not what is there. awsemu used to copy
// whole sparse files for each of those, which made copies the largest part of a local
// bake (seconds per call, gigabytes per copy).
//
// The approach: a parent chain, not content addressing. Each snapshot names a layer
// (model.h `Layer`); a layer with a base holds only its own blocks — those with data at
// their offsets in a sparse file, plus the list of blocks it cleared to zeros — and reads
// every other block from its base; a layer without a base is a whole sparse file (a
// catalog image read in place, a snapshot started without a parent, the first snapshot
// of a blank volume). So:
//   - CopySnapshot and CopyImage give the copy the source's layer: O(1), no bytes;
//   - StartSnapshot with a parent starts an empty layer on the parent's: O(1); puts
//     write the child's file; CompleteSnapshot records which blocks were put (a put of
//     zeros is a cleared block, which hides the parent's);
//   - CreateVolume from a snapshot records the snapshot's layer and makes no file: no
//     EC2 call can write a volume that is not attached. AttachVolume (when it makes a
//     loop device) materialises the file — the chain's content, extent copy of the root
//     (FICLONE when the filesystem has it) plus each layer's blocks. Materialising at
//     attach rather than at create keeps CreateVolume O(1) and costs nothing for volumes
//     that are only snapshotted or deleted; the loop device needs a real file, so the
//     copy cannot be avoided once a volume is attached;
//   - CreateSnapshot of a volume never materialised shares the volume's layer: O(1).
//     Of a materialised one, it compares the file block by block with the layer it was
//     made from (holes skipped with SEEK_DATA on both sides) and stores only what
//     differs; when the file's mtime still carries the marker set at materialisation
//     (no write since, loop writes and hole punches included) nothing is read at all.
// Content addressing (blocks named by their SHA-256) was the alternative: it would also
// share equal blocks between unrelated snapshots, but every copy would have to list all
// of its blocks in state.json (thousands per 30 GiB image) and every block written by a
// volume would have to be hashed; the chain keeps copies O(1) and state.json small.
//
// Deleting a snapshot removes only its record: a layer lives while a snapshot, a volume
// or a layer above it refers to it (collect_layers), so children keep their content, as
// on AWS. Completed layers never change, which is what makes sharing them safe and
// lets the block lists be cached. Reads follow the chain: a handful of binary searches
// per block, chains being as deep as the copies made from one base.
#include "emulator/layers.h"

#include <unistd.h>

#include <algorithm>
#include <map>
#include <set>

#include "aws/sigv4.h"
#include "emulator/blockstore.h"

namespace amibake::emu {
namespace {

const Layer* find_layer(Context& ctx, const std::string& id) {
  auto it = ctx.layers().find(id);
  return it == ctx.layers().end() ? nullptr : &it->second;
}

// The layers of `id`'s chain, top first, ending with the one without a base.
std::vector<const Layer*> chain_of(Context& ctx, const std::string& id) {
  std::vector<const Layer*> chain;
  for (const Layer* l = find_layer(ctx, id); l;
       l = l->base.empty() ? nullptr : find_layer(ctx, l->base)) {
    chain.push_back(l);
    if (chain.size() > ctx.layers().size()) break;  // a cycle: a corrupt state.json
  }
  return chain;
}

bool holds(const std::vector<int64_t>& sorted, int64_t index) {
  return std::binary_search(sorted.begin(), sorted.end(), index);
}

// (index, data bytes) of a layer without a base: its file's data extents. Cached.
Result<const std::vector<std::pair<int64_t, int64_t>>*> root_extents(Context& ctx,
                                                                     const Layer& root) {
  auto& cache = ctx.layer_cache().root_extents;
  auto it = cache.find(root.id);
  if (it == cache.end()) {
    AMIBAKE_ASSIGN(auto extents, blocks::data_block_bytes(ctx.layer_path(root), kBlockSize));
    it = cache.emplace(root.id, std::move(extents)).first;
  }
  return &it->second;
}

}  // namespace

Status create_layer(Context& ctx, const std::string& id, const std::string& base,
                    int64_t size_bytes) {
  Layer layer;
  layer.id = id;
  layer.file = id + ".img";
  layer.base = base;
  AMIBAKE_TRY(blocks::create_sparse(ctx.layer_path(layer), size_bytes));
  ctx.layers()[id] = std::move(layer);
  return ok();
}

BlockSource locate_block(Context& ctx, const std::string& layer_id, int64_t index) {
  for (const Layer* l : chain_of(ctx, layer_id)) {
    if (l->base.empty() || holds(l->blocks, index)) return {ctx.layer_path(*l), l->id};
    if (holds(l->zeros, index)) return {"", l->id};
  }
  return {"", ""};
}

Result<std::shared_ptr<const std::vector<int64_t>>> content_blocks(Context& ctx,
                                                                   const std::string& layer_id) {
  auto& cache = ctx.layer_cache().content;
  if (auto it = cache.find(layer_id); it != cache.end()) return it->second;
  auto chain = chain_of(ctx, layer_id);
  if (chain.empty() || !chain.back()->base.empty()) {
    return make_error("awsemu: layer " + layer_id + " of a snapshot is missing from state.json",
                      "the --data folder is damaged; start awsemu with an empty one");
  }
  AMIBAKE_ASSIGN(auto extents, root_extents(ctx, *chain.back()));
  std::set<int64_t> content;
  for (const auto& [index, bytes] : *extents) content.insert(index);
  for (auto l = chain.rbegin() + 1; l != chain.rend(); ++l) {
    for (int64_t index : (*l)->zeros) content.erase(index);
    content.insert((*l)->blocks.begin(), (*l)->blocks.end());
  }
  auto list = std::make_shared<const std::vector<int64_t>>(content.begin(), content.end());
  cache[layer_id] = list;
  return list;
}

Result<int64_t> content_bytes(Context& ctx, const std::string& layer_id) {
  AMIBAKE_ASSIGN(auto indexes, content_blocks(ctx, layer_id));
  auto chain = chain_of(ctx, layer_id);
  AMIBAKE_ASSIGN(auto extents, root_extents(ctx, *chain.back()));
  std::map<int64_t, int64_t> root_bytes(extents->begin(), extents->end());
  int64_t total = 0;
  for (int64_t index : *indexes) {
    // A block a layer holds was written whole; a root block counts its extents.
    BlockSource at = locate_block(ctx, layer_id, index);
    total += at.layer == chain.back()->id ? root_bytes[index] : kBlockSize;
  }
  return total;
}

void seal_layer(Context& ctx, const Snapshot& s) {
  auto it = ctx.layers().find(s.layer);
  if (it == ctx.layers().end() || it->second.base.empty()) return;
  static const std::string kZeroDigest =
      aws::sha256_raw(std::string(static_cast<size_t>(kBlockSize), '\0'));
  Layer& layer = it->second;
  layer.blocks.clear();
  layer.zeros.clear();
  for (const auto& [index, digest] : s.written) {
    (digest == kZeroDigest ? layer.zeros : layer.blocks).push_back(index);
  }
}

Status materialise(Context& ctx, const std::string& layer_id, const std::string& path,
                   int64_t size_bytes) {
  auto chain = chain_of(ctx, layer_id);
  if (chain.empty() || !chain.back()->base.empty()) {
    return make_error("awsemu: layer " + layer_id + " of a volume is missing from state.json",
                      "the --data folder is damaged; start awsemu with an empty one");
  }
  AMIBAKE_TRY(blocks::copy_sparse(ctx.layer_path(*chain.back()), path, size_bytes));
  const std::string zeros(static_cast<size_t>(kBlockSize), '\0');
  for (auto l = chain.rbegin() + 1; l != chain.rend(); ++l) {
    for (int64_t index : (*l)->zeros) AMIBAKE_TRY(blocks::write_block(path, index, zeros));
    for (int64_t index : (*l)->blocks) {
      AMIBAKE_ASSIGN(std::string data, blocks::read_block(ctx.layer_path(**l), index, kBlockSize));
      AMIBAKE_TRY(blocks::write_block(path, index, data));
    }
  }
  return blocks::mark_unchanged(path);
}

Result<std::string> snapshot_volume(Context& ctx, Volume& v, const std::string& new_id) {
  if (!v.materialised) return v.base_layer;
  const std::string path = ctx.volume_path(v);
  if (!v.base_layer.empty() && blocks::unchanged_since_mark(path)) return v.base_layer;
  // Mark before reading: a write that lands while the file is read moves the mtime
  // again, so the next snapshot compares instead of trusting the mark.
  AMIBAKE_TRY(blocks::mark_unchanged(path));
  if (v.base_layer.empty()) {
    Layer whole;
    whole.id = new_id;
    whole.file = new_id + ".img";
    AMIBAKE_TRY(blocks::copy_sparse(path, ctx.layer_path(whole), 0));
    ctx.layers()[new_id] = whole;
    v.base_layer = new_id;
    return new_id;
  }
  AMIBAKE_ASSIGN(auto written, blocks::data_blocks(path, kBlockSize));
  AMIBAKE_ASSIGN(auto base_blocks, content_blocks(ctx, v.base_layer));
  std::vector<int64_t> candidates;
  std::set_union(written.begin(), written.end(), base_blocks->begin(), base_blocks->end(),
                 std::back_inserter(candidates));
  Layer layer;
  layer.id = new_id;
  layer.file = new_id + ".img";
  layer.base = v.base_layer;
  const std::string layer_file = ctx.layer_path(layer);
  AMIBAKE_TRY(blocks::create_sparse(layer_file, static_cast<int64_t>(v.size) * kGiB));
  const std::string zeros(static_cast<size_t>(kBlockSize), '\0');
  for (int64_t index : candidates) {
    std::string now = zeros, before = zeros;
    if (holds(written, index)) {
      AMIBAKE_ASSIGN(now, blocks::read_block(path, index, kBlockSize));
    }
    BlockSource at = locate_block(ctx, v.base_layer, index);
    if (!at.path.empty() && std::binary_search(base_blocks->begin(), base_blocks->end(), index)) {
      AMIBAKE_ASSIGN(before, blocks::read_block(at.path, index, kBlockSize));
    }
    if (now == before) continue;
    if (blocks::is_zero(now)) {
      layer.zeros.push_back(index);
    } else {
      AMIBAKE_TRY(blocks::write_block(layer_file, index, now));
      layer.blocks.push_back(index);
    }
  }
  if (layer.blocks.empty() && layer.zeros.empty()) {
    ::unlink(layer_file.c_str());
    return v.base_layer;
  }
  ctx.layers()[new_id] = std::move(layer);
  v.base_layer = new_id;
  return new_id;
}

void collect_layers(Context& ctx) {
  auto& layers = ctx.layers();
  std::set<std::string> live;
  auto keep = [&](std::string id) {
    while (!id.empty() && live.insert(id).second) {
      auto it = layers.find(id);
      if (it == layers.end()) break;
      id = it->second.base;
    }
  };
  for (const auto& [region, w] : ctx.regions()) {  // copies in other regions share layers
    for (const auto& [id, s] : w.snapshots) keep(s.layer);
    for (const auto& [id, v] : w.volumes) keep(v.base_layer);
  }
  for (auto it = layers.begin(); it != layers.end();) {
    if (live.count(it->first)) {
      ++it;
      continue;
    }
    if (!it->second.external) ::unlink(ctx.layer_path(it->second).c_str());
    ctx.layer_cache().root_extents.erase(it->first);
    ctx.layer_cache().content.erase(it->first);
    it = layers.erase(it);
  }
}

}  // namespace amibake::emu
