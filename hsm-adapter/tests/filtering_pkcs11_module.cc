// A PKCS#11 module that forwards to SoftHSMv2 but hides one mechanism (CKM_AES_CMAC) from
// C_GetMechanismList: a token that lacks what the custody needs, made by wrapping a real one.
#include <dlfcn.h>

#include <algorithm>
#include <vector>

#include <p11-kit/pkcs11.h>

namespace {

constexpr CK_MECHANISM_TYPE kHidden = CKM_AES_CMAC;

CK_FUNCTION_LIST real_list;
CK_FUNCTION_LIST filtered_list;
CK_C_GetMechanismList real_get_mechanism_list = nullptr;

CK_RV FilteredGetMechanismList(CK_SLOT_ID slot, CK_MECHANISM_TYPE_PTR list, CK_ULONG_PTR count) {
  CK_ULONG real_count = 0;
  CK_RV rv = real_get_mechanism_list(slot, nullptr, &real_count);
  if (rv != CKR_OK) return rv;
  std::vector<CK_MECHANISM_TYPE> all(real_count);
  rv = real_get_mechanism_list(slot, all.data(), &real_count);
  if (rv != CKR_OK) return rv;
  all.resize(real_count);
  all.erase(std::remove(all.begin(), all.end(), kHidden), all.end());
  if (list == nullptr) {
    *count = static_cast<CK_ULONG>(all.size());
    return CKR_OK;
  }
  if (*count < all.size()) {
    *count = static_cast<CK_ULONG>(all.size());
    return CKR_BUFFER_TOO_SMALL;
  }
  std::copy(all.begin(), all.end(), list);
  *count = static_cast<CK_ULONG>(all.size());
  return CKR_OK;
}

}  // namespace

extern "C" __attribute__((visibility("default"))) CK_RV C_GetFunctionList(CK_FUNCTION_LIST_PTR_PTR out) {
  void* softhsm = ::dlopen("/usr/lib/softhsm/libsofthsm2.so", RTLD_NOW | RTLD_LOCAL);
  if (softhsm == nullptr) return CKR_GENERAL_ERROR;
  auto get = reinterpret_cast<CK_C_GetFunctionList>(::dlsym(softhsm, "C_GetFunctionList"));
  CK_FUNCTION_LIST_PTR real = nullptr;
  if (get == nullptr || get(&real) != CKR_OK) return CKR_GENERAL_ERROR;
  real_list = *real;
  filtered_list = *real;
  real_get_mechanism_list = real_list.C_GetMechanismList;
  filtered_list.C_GetMechanismList = &FilteredGetMechanismList;
  *out = &filtered_list;
  return CKR_OK;
}
