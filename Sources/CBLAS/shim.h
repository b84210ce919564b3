// OpenBLAS' CBLAS interface (Debian: libopenblas-dev puts cblas.h on the default include path).
#include <cblas.h>
// openblas_set_num_threads is declared by OpenBLAS' cblas.h; re-declared here so the shim
// compiles against any CBLAS header that provides it under the same name.
void openblas_set_num_threads(int num_threads);
int openblas_get_num_threads(void);
