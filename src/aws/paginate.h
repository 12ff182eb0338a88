// Following NextToken pagination to the end, safely.
//
// AWS list calls answer a page and a token; the caller asks again with the token
// until it comes back empty. Two traps: EBS direct may answer an *empty* page that
// still carries a token (keep going), and a faulty endpoint may hand back a token it
// already gave (stop with an error instead of looping forever).
#pragma once

#include <functional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"

namespace amibake::aws {

// One page of a list answer.
template <typename T>
struct Page {
  std::vector<T> items;
  std::string next_token;  // empty on the last page
};

// Most pages we accept in one listing before calling the endpoint broken. At the
// smallest page sizes AWS allows this is still far above any real account.
inline constexpr int kMaxPages = 100000;

// Calls fetch(token) starting with "" and appends each page's items to `out` until a
// page's next_token is empty. Fails with fetch's error, or when a token repeats or
// more than kMaxPages pages arrive ("<what>: pagination: ...").
template <typename T>
Status collect_pages(std::string_view what,
                     const std::function<Result<Page<T>>(const std::string& token)>& fetch,
                     std::vector<T>* out) {
  std::set<std::string> seen;
  std::string token;
  for (int pages = 0; pages < kMaxPages; ++pages) {
    Result<Page<T>> page = fetch(token);
    if (!page) return page.error();
    for (T& item : page->items) out->push_back(std::move(item));
    if (page->next_token.empty()) return ok();
    if (!seen.insert(page->next_token).second) {
      return make_error(std::string(what) +
                            ": pagination: the endpoint returned the same "
                            "NextToken twice; stopping instead of looping",
                        "this is an endpoint bug; retry, or report it with the request ids");
    }
    token = std::move(page->next_token);
  }
  return make_error(std::string(what) + ": pagination: more than " + std::to_string(kMaxPages) +
                        " pages; stopping",
                    "narrow the request with filters");
}

}  // namespace amibake::aws
