//! The Azure layer: the only module that talks to Azure Resource Manager.

/// A configured connection to ARM (real Azure or the emulator).
pub struct Azure {}
