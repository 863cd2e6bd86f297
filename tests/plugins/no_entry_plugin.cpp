// A shared library that is not an autopod plugin: it lacks the entry point.
extern "C" int some_other_function(void) { return 42; }
