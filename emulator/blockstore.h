// Sparse files as volumes and snapshots: create, copy (reflink or hole-skipping),
// list written 512 KiB blocks, read and write one block.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "base/result.h"

namespace amibake::emu::blocks {

// Creates (or truncates) `path` as a sparse file of `size_bytes`, mode 0600.
Status create_sparse(const std::string& path, int64_t size_bytes);

// Copies `src` to `dst` (replacing it): FICLONE reflink when the filesystem has it,
// else a copy of the data extents only (SEEK_DATA/SEEK_HOLE), holes kept. The result
// is then sized to max(size of src, `min_size_bytes`). Sets *reflinked if given.
Status copy_sparse(const std::string& src, const std::string& dst, int64_t min_size_bytes,
                   bool* reflinked = nullptr);

// Returns the indexes, ascending, of `block_size` blocks of `path` that hold any
// data extent (holes skipped without reading).
Result<std::vector<int64_t>> data_blocks(const std::string& path, int64_t block_size);

// Returns bytes of data extents in `path` (what a copy has to move).
Result<int64_t> data_bytes(const std::string& path);

// Returns (index, bytes of data extents inside it) for every `block_size` block of
// `path` that holds any data extent, ascending.
Result<std::vector<std::pair<int64_t, int64_t>>> data_block_bytes(const std::string& path,
                                                                  int64_t block_size);

// Sets the modification time of `path` to a fixed past marker. Any later write to the
// file (also through a loop device, and hole punching) moves it to the present, so
// unchanged_since_mark() tells whether the file may have changed since.
Status mark_unchanged(const std::string& path);
// Returns true when `path` still has the marker mtime set by mark_unchanged().
bool unchanged_since_mark(const std::string& path);

// Reads block `index` (zero-filled past EOF and in holes).
Result<std::string> read_block(const std::string& path, int64_t index, int64_t block_size);

// Writes `data` (exactly one block) at block `index`. An all-zero block punches a
// hole instead, so it no longer counts as written data (EBS: zeros clear a block).
Status write_block(const std::string& path, int64_t index, std::string_view data);

// Returns true when every byte of `data` is zero.
bool is_zero(std::string_view data);

}  // namespace amibake::emu::blocks
