// Errors across the C ABI of orz-tch's C++ shims (optim_shim.cpp, c10d_shim.cpp): a function
// runs its body under `guarded`, which returns NULL on success or a malloc'd copy of the C++
// exception's message (the Rust side frees it through the shim's `free_error` function), so
// that no C++ exception crosses the boundary.
#pragma once

#include <cstdlib>
#include <cstring>
#include <exception>
#include <string>

namespace orz_shim {

inline char* error_copy(const std::string& message) {
  char* out = static_cast<char*>(std::malloc(message.size() + 1));
  if (out != nullptr) {
    std::memcpy(out, message.c_str(), message.size() + 1);
  }
  return out;
}

template <typename F>
char* guarded(F&& body) {
  try {
    body();
    return nullptr;
  } catch (const std::exception& e) {
    return error_copy(e.what());
  } catch (...) {
    return error_copy("unknown C++ exception");
  }
}

}  // namespace orz_shim
