//! Jobs on the Docker engine: create, copy in, start, wait, read the output, copy out, remove.
//! Files go through the engine's archive endpoints as streams, so a dump of any size never sits
//! in dockhand's memory.

use std::time::Duration;

use bollard::query_parameters::{
    CreateContainerOptions, DownloadFromContainerOptions, LogsOptions, RemoveContainerOptions,
    UploadToContainerOptions, WaitContainerOptions,
};
use futures_util::stream::{StreamExt, TryStreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::convert::{engine, mount};
use super::DockerEngine;
use crate::engine::job::{Job, JobOutput, Jobs};
use crate::engine::EngineError;

fn failed(op: &'static str, target: &str, e: impl std::fmt::Display) -> EngineError {
    EngineError::Engine {
        op,
        target: target.to_owned(),
        message: e.to_string(),
    }
}

impl Jobs for DockerEngine {
    async fn run_job(&self, job: &Job) -> Result<JobOutput, EngineError> {
        // Longer than the job may run: the deadline is the job's own.
        let docker = self
            .docker
            .clone()
            .with_timeout(job.timeout + Duration::from_secs(30));
        let remove = RemoveContainerOptions {
            force: true,
            ..Default::default()
        };
        // A job of this name left by a crash goes first.
        let _ = docker
            .remove_container(&job.name, Some(remove.clone()))
            .await;
        let mut env = job.env.clone();
        env.extend(
            job.secret_env
                .iter()
                .map(|s| format!("{}={}", s.var, s.value)),
        );
        let body = bollard::models::ContainerCreateBody {
            image: Some(job.image.clone()),
            entrypoint: Some(vec!["sh".into(), "-c".into(), job.script.clone()]),
            cmd: Some(Vec::new()),
            user: Some("0".into()),
            env: Some(env),
            labels: Some(job.labels.clone()),
            host_config: Some(bollard::models::HostConfig {
                mounts: Some(job.mounts.iter().map(mount).collect()),
                network_mode: job.network_of.as_ref().map(|id| format!("container:{id}")),
                ..Default::default()
            }),
            ..Default::default()
        };
        let opts = CreateContainerOptions {
            name: Some(job.name.clone()),
            ..Default::default()
        };
        let id = docker
            .create_container(Some(opts), body)
            .await
            .map_err(|e| engine("create job", &job.name, e))?
            .id;
        let result = tokio::time::timeout(job.timeout, self.run_created(&docker, &id, job)).await;
        let _ = docker.remove_container(&id, Some(remove)).await;
        match result {
            Ok(r) => r,
            Err(_) => Err(failed(
                "finish job",
                &job.name,
                format!("not done after {}", humantime::format_duration(job.timeout)),
            )),
        }
    }
}

impl DockerEngine {
    async fn run_created(
        &self,
        docker: &bollard::Docker,
        id: &str,
        job: &Job,
    ) -> Result<JobOutput, EngineError> {
        if let Some((local, dir)) = &job.upload {
            upload(docker, id, local, dir).await?;
        }
        docker
            .start_container(id, None::<bollard::query_parameters::StartContainerOptions>)
            .await
            .map_err(|e| engine("start job", &job.name, e))?;
        let opts = WaitContainerOptions {
            condition: "not-running".into(),
        };
        let exit_code = match docker.wait_container(id, Some(opts)).next().await {
            Some(Ok(r)) => r.status_code,
            Some(Err(bollard::errors::Error::DockerContainerWaitError { code, .. })) => code,
            Some(Err(e)) => return Err(engine("wait for job", &job.name, e)),
            None => return Err(failed("wait for job", &job.name, "no answer")),
        };
        let mut out = JobOutput {
            exit_code,
            ..Default::default()
        };
        let opts = LogsOptions {
            stdout: true,
            stderr: true,
            tail: "all".into(),
            ..Default::default()
        };
        let mut logs = docker.logs(id, Some(opts));
        while let Some(chunk) = logs.next().await {
            use bollard::container::LogOutput as L;
            match chunk.map_err(|e| engine("read the output of job", &job.name, e))? {
                L::StdOut { message } | L::Console { message } => {
                    out.stdout.push_str(&String::from_utf8_lossy(&message));
                }
                L::StdErr { message } => out.stderr.push_str(&String::from_utf8_lossy(&message)),
                L::StdIn { .. } => {}
            }
        }
        if let (true, Some((path, local))) = (out.succeeded(), &job.download) {
            download(docker, id, path, local).await?;
        }
        Ok(out)
    }
}

/// Streams `local` into directory `dir` of container `id`, as a one-file tar archive.
async fn upload(
    docker: &bollard::Docker,
    id: &str,
    local: &std::path::Path,
    dir: &str,
) -> Result<(), EngineError> {
    let target = local.display().to_string();
    let file = tokio::fs::File::open(local)
        .await
        .map_err(|e| failed("read", &target, e))?;
    let size = file
        .metadata()
        .await
        .map_err(|e| failed("read", &target, e))?
        .len();
    let name = local
        .file_name()
        .map_or_else(|| "upload".to_owned(), |n| n.to_string_lossy().into_owned());
    let mut header = tar::Header::new_gnu();
    header
        .set_path(&name)
        .map_err(|e| failed("pack", &target, e))?;
    header.set_size(size);
    header.set_mode(0o600);
    header.set_entry_type(tar::EntryType::Regular);
    header.set_cksum();
    let head = bytes_of(header.as_bytes());
    // The file, then zeros to a whole block, then the two empty blocks that end an archive.
    let pad = (512 - (size % 512) as usize) % 512;
    let tail = bytes_of(&vec![0u8; pad + 1024]);
    let body = futures_util::stream::unfold(Some(file), |file| async move {
        let mut file = file?;
        let mut buf = vec![0u8; 256 * 1024];
        match file.read(&mut buf).await {
            Ok(0) => None,
            Ok(n) => {
                buf.truncate(n);
                Some((Ok(bytes::Bytes::from(buf)), Some(file)))
            }
            Err(e) => Some((Err(e), None)),
        }
    });
    let stream = futures_util::stream::iter([Ok(head)])
        .chain(body)
        .chain(futures_util::stream::iter([Ok(tail)]));
    let opts = UploadToContainerOptions {
        path: dir.to_owned(),
        ..Default::default()
    };
    docker
        .upload_to_container(id, Some(opts), bollard::body_try_stream(stream))
        .await
        .map_err(|e| engine("copy into job", id, e))
}

fn bytes_of(b: &[u8]) -> bytes::Bytes {
    bytes::Bytes::copy_from_slice(b)
}

/// Copies file `path` of container `id` to `local` (mode 0600): the engine's tar stream goes
/// to a file beside it, whose one entry is then unpacked.
async fn download(
    docker: &bollard::Docker,
    id: &str,
    path: &str,
    local: &std::path::Path,
) -> Result<(), EngineError> {
    let target = local.display().to_string();
    let (archive, file) =
        new_private(local, "tar.partial").map_err(|e| failed("write", &target, e))?;
    let mut file = tokio::fs::File::from_std(file);
    let opts = DownloadFromContainerOptions {
        path: path.to_owned(),
    };
    let mut stream = docker
        .download_from_container(id, Some(opts))
        .map_err(|e| engine("copy out of job", id, e));
    let copied = async {
        while let Some(chunk) = stream.next().await {
            file.write_all(&chunk?)
                .await
                .map_err(|e| failed("write", &target, e))?;
        }
        file.flush().await.map_err(|e| failed("write", &target, e))
    }
    .await;
    let unpacked = match copied {
        Ok(()) => {
            let (archive, local) = (archive.clone(), local.to_owned());
            tokio::task::spawn_blocking(move || unpack_one(&archive, &local))
                .await
                .map_err(|e| failed("unpack", &target, e))
                .and_then(|r| r.map_err(|e| failed("unpack", &target, e)))
        }
        Err(e) => Err(e),
    };
    let _ = tokio::fs::remove_file(&archive).await;
    unpacked
}

/// A new file beside `local` (`local.<random>.<suffix>`) only its owner may read, created with
/// `O_EXCL | O_NOFOLLOW`: never a file or a link someone else put there (in a shared
/// directory such as /tmp, a planted `.partial` link would have been written through).
fn new_private(
    local: &std::path::Path,
    suffix: &str,
) -> std::io::Result<(std::path::PathBuf, std::fs::File)> {
    let mut random = [0u8; 8];
    getrandom::getrandom(&mut random).map_err(std::io::Error::other)?;
    let tag: String = random.iter().map(|b| format!("{b:02x}")).collect();
    let mut name = local.as_os_str().to_owned();
    name.push(format!(".{tag}.{suffix}"));
    let path = std::path::PathBuf::from(name);
    let file = crate::hostfs::create_new_private(&path)?;
    Ok((path, file))
}

/// Writes the first regular file of tar `archive` to `local`, through a temporary name.
fn unpack_one(archive: &std::path::Path, local: &std::path::Path) -> std::io::Result<()> {
    let mut a = tar::Archive::new(std::fs::File::open(archive)?);
    for entry in a.entries()? {
        let mut entry = entry?;
        if entry.header().entry_type() != tar::EntryType::Regular {
            continue;
        }
        let (partial, mut out) = new_private(local, "partial")?;
        let copied = std::io::copy(&mut entry, &mut out).and_then(|_| out.sync_all());
        if let Err(e) = copied {
            let _ = std::fs::remove_file(&partial);
            return Err(e);
        }
        // The rename replaces whatever is at `local` (a link there is replaced, not followed).
        return std::fs::rename(&partial, local);
    }
    Err(std::io::Error::other("the archive holds no file"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_download_never_writes_through_a_planted_link_nor_reuses_a_planted_file() {
        use std::os::unix::fs::PermissionsExt;
        // A shared directory where someone else planted `orders.partial` (a link to a file of
        // root's) and `orders.tar.partial` (theirs, mode 0666), as the review did in /tmp.
        let dir = tempfile::tempdir().expect("tempdir");
        let victim = dir.path().join("victim");
        std::fs::write(&victim, "root's file").expect("write");
        let local = dir.path().join("orders");
        std::os::unix::fs::symlink(&victim, dir.path().join("orders.partial")).expect("link");
        std::fs::write(dir.path().join("orders.tar.partial"), "theirs").expect("write");
        let mut tar = tar::Builder::new(Vec::new());
        let mut header = tar::Header::new_gnu();
        header.set_size(4);
        header.set_mode(0o644);
        header.set_cksum();
        tar.append_data(&mut header, "orders.dump", &b"DUMP"[..])
            .expect("append");
        let (archive, mut f) = new_private(&local, "tar.partial").expect("new");
        std::io::Write::write_all(&mut f, &tar.into_inner().expect("tar")).expect("write");
        unpack_one(&archive, &local).expect("unpacks");
        assert_eq!(std::fs::read(&victim).expect("read"), b"root's file");
        assert_eq!(std::fs::read(&local).expect("read"), b"DUMP");
        let mode = std::fs::metadata(&local)
            .expect("stat")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(
            std::fs::read(dir.path().join("orders.tar.partial")).expect("read"),
            b"theirs"
        );
    }
}
