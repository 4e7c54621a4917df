//! Exceptions defined by anywait.

use pyo3::exceptions::PyBaseException;

pyo3::create_exception!(
    anywait.lowlevel,
    FiberExit,
    PyBaseException,
    "Raised inside a suspended fiber to unwind it (by `Fiber.close()`, or when the \
     fiber is garbage-collected). Like `GeneratorExit`, it derives from `BaseException` \
     so that `except Exception` does not swallow it; code that catches it must re-raise \
     it or let the fiber return."
);
