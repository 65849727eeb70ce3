"""The local stack: template resources in moto server, the emulator, a Lambda-like runner."""
