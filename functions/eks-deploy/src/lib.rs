//! eks-deploy: puts the image the build produced into the EKS Deployment, follows the rollout
//! with a watch, and says "done" only when the cluster says so.
//!
//! Without the `aws` feature only [`params`], [`plan`], [`image`] and [`continuation`] are built: how an
//! invocation, its parameters, its release plan and its image are read, which the fuzz targets
//! exercise.

#[cfg(feature = "aws")]
pub mod canary;
#[cfg(feature = "aws")]
pub mod cluster;
#[cfg(feature = "aws")]
pub mod config;
pub mod continuation;
#[cfg(feature = "aws")]
pub mod handler;
pub mod image;
pub mod params;
pub mod plan;
#[cfg(feature = "aws")]
pub mod release;
#[cfg(feature = "aws")]
pub mod rollout;

#[cfg(test)]
#[cfg(feature = "aws")]
mod testing;
