// Replays a fuzz target's entry point outside libFuzzer, so the default (GCC) build
// exercises the answer parsers under ctest.
//
// For every seed file in the directories given on the command line it runs: the seed
// itself, every prefix of it (a truncated answer is the commonest real-world garbage),
// and a fixed number of deterministic mutations (byte flips, deletions, duplications,
// chosen by a seeded generator so a failure reproduces). It fails when no seed is
// found, so an emptied corpus cannot turn the test into one that always passes.
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <random>
#include <string>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);

namespace {

void run(const std::string& input) {
  LLVMFuzzerTestOneInput(reinterpret_cast<const uint8_t*>(input.data()), input.size());
}

// Returns `seed` changed in one of three ways chosen by `rng`.
std::string mutate(const std::string& seed, std::mt19937& rng) {
  std::string s = seed;
  if (s.empty()) return s;
  std::uniform_int_distribution<size_t> pos(0, s.size() - 1);
  switch (rng() % 3) {
    case 0:
      s[pos(rng)] = static_cast<char>(rng() & 0xff);
      break;
    case 1:
      s.erase(pos(rng), 1 + rng() % 16);
      break;
    default: {
      const size_t at = pos(rng);
      s.insert(at, s.substr(at, 1 + rng() % 32));
      break;
    }
  }
  return s;
}

}  // namespace

int main(int argc, char** argv) {
  constexpr int kMutationsPerSeed = 2000;
  size_t seeds = 0, runs = 0;
  for (int i = 1; i < argc; ++i) {
    std::error_code ec;
    for (const auto& entry : std::filesystem::directory_iterator(argv[i], ec)) {
      if (!entry.is_regular_file()) continue;
      std::ifstream in(entry.path(), std::ios::binary);
      const std::string seed((std::istreambuf_iterator<char>(in)),
                             std::istreambuf_iterator<char>());
      ++seeds;
      for (size_t n = 0; n <= seed.size(); ++n, ++runs) run(seed.substr(0, n));
      std::mt19937 rng(static_cast<uint32_t>(seeds));
      for (int m = 0; m < kMutationsPerSeed; ++m, ++runs) run(mutate(seed, rng));
    }
    if (ec) std::fprintf(stderr, "%s: cannot list: %s\n", argv[i], ec.message().c_str());
  }
  if (seeds == 0) {
    std::fprintf(stderr, "fuzz replay: no seed files found; give the corpus directory\n");
    return 1;
  }
  std::printf("fuzz replay: %zu seeds, %zu inputs, no crash\n", seeds, runs);
  return 0;
}
