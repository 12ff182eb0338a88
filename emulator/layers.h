// Snapshot content as chains of layers (see layers.cc): reading a block, listing the
// blocks, making a volume's file, finding what a volume changed, freeing what nothing
// uses. Every function here wants ctx.mu() held.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "base/result.h"
#include "emulator/service.h"

namespace amibake::emu {

// Adds a new, empty layer `id` on top of `base` ("" = none) with a sparse file of
// `size_bytes`, for a snapshot whose blocks are about to be written.
Status create_layer(Context& ctx, const std::string& id, const std::string& base,
                    int64_t size_bytes);

// Where block `index` of `layer_id`'s content is read from: `path` is the file holding
// it ("" = the block reads as zeros), `layer` the layer that decided (two snapshots
// whose block resolves to the same layer hold the same bytes).
struct BlockSource {
  std::string path;
  std::string layer;
};
BlockSource locate_block(Context& ctx, const std::string& layer_id, int64_t index);

// Returns the indexes, ascending, of the blocks of `layer_id`'s content that hold data.
// Cached: call it only for content that no longer changes (completed snapshots).
Result<std::shared_ptr<const std::vector<int64_t>>> content_blocks(Context& ctx,
                                                                   const std::string& layer_id);

// Returns the bytes of data in `layer_id`'s content: what a full copy would move, which
// sets how long AWS takes (transfer times do not depend on how awsemu stores it).
Result<int64_t> content_bytes(Context& ctx, const std::string& layer_id);

// Records in the layer of sealed EBS direct snapshot `s` the blocks put to it, when the
// layer has a base (a layer without one is its file's data extents already).
void seal_layer(Context& ctx, const Snapshot& s);

// Writes the whole content of `layer_id` to `path` as a sparse file of at least
// `size_bytes`, then marks it unchanged (blocks::mark_unchanged).
Status materialise(Context& ctx, const std::string& layer_id, const std::string& path,
                   int64_t size_bytes);

// Returns the layer holding the content `v` has now, for CreateSnapshot: its base
// layer when nothing can have changed it (never materialised, or unchanged since the
// last mark); else a new layer `new_id` holding the blocks that differ from the base
// (or a whole copy when it has none). Sets v.base_layer to the returned layer.
Result<std::string> snapshot_volume(Context& ctx, Volume& v, const std::string& new_id);

// Removes the layers no snapshot, volume or other layer refers to, with their files
// (catalog images excepted).
void collect_layers(Context& ctx);

}  // namespace amibake::emu
