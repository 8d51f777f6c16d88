/* plugin.c: the library dlopener loads; build with -shared -fPIC. */
__attribute__((noinline)) long plugin_func(long x) { return x * 7; }
