pub mod crl;
pub mod hot;
pub mod ocsp;
pub mod redirect;
pub mod stapling;
