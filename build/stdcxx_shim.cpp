// Provides std::ios_base_library_init(), the one symbol of GLIBCXX_3.4.32 (GCC 13) that TorchSharp's
// libLibTorchSharp.so needs. On hosts whose libstdc++ is older (Debian 12: GCC 12) the build marks that
// version need weak and GenRecal loads this library with RTLD_GLOBAL before TorchSharp.
// GCC 13 defines the function as the initialisation of the standard streams; ios_base::Init does that.
#include <ios>
namespace std {
void ios_base_library_init() { static ios_base::Init init; }
}
