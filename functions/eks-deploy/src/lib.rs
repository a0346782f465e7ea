//! eks-deploy: puts the image the build produced into the EKS Deployment, follows the rollout
//! with a watch, and says "done" only when the cluster says so.

pub mod cluster;
pub mod config;
pub mod handler;
pub mod params;
pub mod rollout;

#[cfg(test)]
mod testing;
