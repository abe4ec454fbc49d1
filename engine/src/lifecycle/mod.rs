pub mod ari;
pub mod context;
pub mod events;
pub mod jobfile;
pub mod reg;
pub mod renew;
pub mod scheduler;
pub mod tailscale;
