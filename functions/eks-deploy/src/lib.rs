//! eks-deploy: puts the image the build produced into the EKS Deployment, follows the rollout
//! with a watch, and says "done" only when the cluster says so.
//!
//! Without the `aws` feature only [`params`] is built: how an invocation and its parameters are
//! read, which the fuzz targets exercise.

#[cfg(feature = "aws")]
pub mod cluster;
#[cfg(feature = "aws")]
pub mod config;
#[cfg(feature = "aws")]
pub mod handler;
pub mod params;
#[cfg(feature = "aws")]
pub mod rollout;

#[cfg(test)]
#[cfg(feature = "aws")]
mod testing;
