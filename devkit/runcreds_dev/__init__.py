"""The embedded AWS (moto on 127.0.0.1), the strict STS stand-in, the demo: for laptops, CI and tests."""
