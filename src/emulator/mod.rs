//! A loopback Azure Resource Manager emulator on real disk images.
