//! Flags of the load's shape beyond the burst: an arrival rate (`--rate`, `--stages`), ramping
//! users (`--vus-stages`, `--think`), or either from a TOML file (`--stages-file`).

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use crate::error::DriverError;
use crate::spec::stages::{StageError, StageUnit, Stages, StagesFile, Think, parse_rate};
use crate::spec::{MAX_IN_FLIGHT, Shape, SpecError};

/// Largest stages file read, in bytes.
const MAX_STAGES_FILE: u64 = 256 * 1024;

#[derive(Debug, Clone, Default, Args)]
pub struct ShapeArgs {
    /// Open model: purchases arrive at this rate (N/s, N/m or N per second, e.g. 2000/s) for
    /// --duration, whether or not the checkout keeps up; users cycle through --users.
    #[arg(long, value_parser = |s: &str| parse_rate(s).map_err(|e| e.to_string()),
          conflicts_with_all = ["stages", "vus_stages", "stages_file"], requires = "duration")]
    pub rate: Option<f64>,

    /// Open model with ramps: target rates at instants from the start, linear in between,
    /// e.g. '0s:0/s,1s:20000/s,11s:20000/s,13s:0/s' (a flash-sale spike). Sets the run's
    /// length (no --duration).
    #[arg(long, value_name = "TIME:RATE,...",
          value_parser = |s: &str| Stages::parse(s, StageUnit::Rate).map_err(|e| e.to_string()),
          conflicts_with_all = ["vus_stages", "stages_file", "duration"])]
    pub stages: Option<Stages>,

    /// Closed model with ramps: virtual users at instants from the start, joining and leaving
    /// linearly in between, e.g. '0s:0,5s:100,20s:100,25s:0'. --users becomes the peak. Sets
    /// the run's length (no --duration).
    #[arg(long, value_name = "TIME:USERS,...",
          value_parser = |s: &str| Stages::parse(s, StageUnit::Users).map_err(|e| e.to_string()),
          conflicts_with_all = ["stages_file", "duration"])]
    pub vus_stages: Option<Stages>,

    /// The shape from a TOML file: `stages = "..."` (with `max_in_flight = N`) or
    /// `vus_stages = "..."` (with `think = "50ms..200ms"`).
    #[arg(long, value_name = "FILE.toml", conflicts_with = "duration")]
    pub stages_file: Option<PathBuf>,

    /// Open model: most purchases in flight at once; an arrival that finds this many is
    /// dropped and counted (never delayed) [default: --users].
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=MAX_IN_FLIGHT as i64))]
    pub max_in_flight: Option<u32>,

    /// Ramping users: pause between a user's purchases, fixed (100ms) or drawn from a range
    /// (50ms..200ms).
    #[arg(long, value_parser = |s: &str| Think::parse(s).map_err(|e| e.to_string()),
          requires = "vus_stages")]
    pub think: Option<Think>,
}

impl ShapeArgs {
    /// The shape these flags describe for a load of `users` lasting `duration`, with the
    /// users and duration it implies.
    pub fn to_shape(
        &self,
        users: u32,
        duration: Option<Duration>,
    ) -> Result<(Shape, u32, Option<Duration>), DriverError> {
        let file = match &self.stages_file {
            Some(path) => Some(read_file(path)?),
            None => None,
        };
        let file = file.unwrap_or_default();
        let rate_stages = match (self.rate, &self.stages, &file.stages) {
            (Some(rate), _, _) => {
                let length =
                    duration.ok_or(SpecError::Stages(StageError::NoLength(Duration::ZERO)))?;
                Some(Stages::constant(rate, length, StageUnit::Rate).map_err(SpecError::from)?)
            }
            (None, Some(stages), _) => Some(stages.clone()),
            (None, None, Some(raw)) => {
                Some(Stages::parse(raw, StageUnit::Rate).map_err(SpecError::from)?)
            }
            (None, None, None) => None,
        };
        if let Some(stages) = rate_stages {
            let max_in_flight = self.max_in_flight.or(file.max_in_flight).unwrap_or(users);
            let end = Some(stages.end());
            let shape = Shape::Rate {
                stages,
                max_in_flight,
            };
            return Ok((shape, users, end));
        }
        let vus = match (&self.vus_stages, &file.vus_stages) {
            (Some(stages), _) => Some(stages.clone()),
            (None, Some(raw)) => {
                Some(Stages::parse(raw, StageUnit::Users).map_err(SpecError::from)?)
            }
            (None, None) => None,
        };
        if let Some(stages) = vus {
            let think = match (self.think, &file.think) {
                (Some(think), _) => think,
                (None, Some(raw)) => Think::parse(raw).map_err(SpecError::from)?,
                (None, None) => Think::default(),
            };
            let peak = stages.peak() as u32;
            let end = Some(stages.end());
            return Ok((Shape::Vus { stages, think }, peak, end));
        }
        if self.max_in_flight.is_some() {
            return Err(
                SpecError::ShapeUnit("--max-in-flight applies to --rate and --stages").into(),
            );
        }
        Ok((Shape::Users, users, duration))
    }
}

fn read_file(path: &PathBuf) -> Result<StagesFile, DriverError> {
    use std::io::Read;
    let named = |e: String| SpecError::Stages(StageError::File(format!("{}: {e}", path.display())));
    let mut text = String::new();
    let file = std::fs::File::open(path).map_err(|e| named(e.to_string()))?;
    let read = file
        .take(MAX_STAGES_FILE + 1)
        .read_to_string(&mut text)
        .map_err(|e| named(e.to_string()))?;
    if read as u64 > MAX_STAGES_FILE {
        return Err(named(format!("larger than {MAX_STAGES_FILE} bytes")).into());
    }
    StagesFile::parse(&text).map_err(|e| named(e.to_string()).into())
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use crate::cli::Cli;
    use crate::spec::stages::Think;
    use crate::spec::{RunSpec, Shape, SpecError};
    use std::time::Duration;

    fn spec(args: &[&str]) -> Result<RunSpec, crate::error::DriverError> {
        let argv = ["driver", "--mode", "safe"]
            .into_iter()
            .chain(args.iter().copied());
        Cli::try_parse_from(argv)
            .map_err(|e| crate::error::DriverError::Thread(e.to_string()))?
            .run
            .to_spec()
    }

    #[test]
    fn a_rate_becomes_constant_stages_over_the_duration() {
        let s = spec(&["--rate", "2000/s", "--duration", "10s", "-u", "50"]).unwrap();
        let Shape::Rate {
            stages,
            max_in_flight,
        } = &s.load.shape
        else {
            panic!("{:?}", s.load.shape)
        };
        assert_eq!(stages.to_string(), "0s:2000/s,10s:2000/s");
        assert_eq!(*max_in_flight, 50, "defaults to --users");
        assert_eq!(s.load.duration, Some(Duration::from_secs(10)));
        let s = spec(&["--stages", "0s:0/s,1s:10/s,3s:0/s", "--max-in-flight", "7"]).unwrap();
        assert_eq!(s.load.duration, Some(Duration::from_secs(3)));
        assert!(matches!(
            s.load.shape,
            Shape::Rate {
                max_in_flight: 7,
                ..
            }
        ));
    }

    #[test]
    fn ramped_users_set_the_users_and_the_length() {
        let s = spec(&[
            "--vus-stages",
            "0s:0,5s:100,25s:0",
            "--think",
            "50ms..200ms",
        ])
        .unwrap();
        assert_eq!(s.load.users, 100);
        assert_eq!(s.load.connections, 1);
        assert_eq!(s.load.duration, Some(Duration::from_secs(25)));
        let Shape::Vus { think, .. } = s.load.shape else {
            panic!("not ramped")
        };
        assert_eq!(think, Think::parse("50ms..200ms").unwrap());
    }

    #[test]
    fn refused_combinations() {
        for bad in [
            &["--rate", "10/s"][..],
            &[
                "--rate",
                "10/s",
                "--stages",
                "0s:1/s,1s:1/s",
                "--duration",
                "1s",
            ],
            &["--stages", "0s:1/s,1s:1/s", "--duration", "1s"],
            &["--vus-stages", "0s:1,1s:1", "--duration", "1s"],
            &["--max-in-flight", "5"],
            &["--think", "1s"],
            &["--stages", "0s:1/s,1s:1/s", "--max-in-flight", "0"],
        ] {
            assert!(spec(bad).is_err(), "{bad:?}");
        }
        let err = spec(&[
            "--rate",
            "5/s",
            "--duration",
            "1s",
            "--coordinator",
            "http://c:1",
        ]);
        assert!(
            matches!(
                err,
                Err(crate::error::DriverError::Spec(
                    SpecError::ShapeWithCoordinator
                ))
            ),
            "{err:?}"
        );
    }

    #[test]
    fn a_stages_file() {
        let dir = std::env::temp_dir().join(format!("shapes-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("spike.toml");
        std::fs::write(
            &path,
            "stages = \"0s:0/s,1s:100/s,2s:0/s\"\nmax_in_flight = 9\n",
        )
        .unwrap();
        let s = spec(&["--stages-file", path.to_str().unwrap()]).unwrap();
        assert!(matches!(
            s.load.shape,
            Shape::Rate {
                max_in_flight: 9,
                ..
            }
        ));
        std::fs::write(&path, "vus_stages = \"0s:0,1s:5\"\nthink = \"later\"\n").unwrap();
        let err = spec(&["--stages-file", path.to_str().unwrap()]).unwrap_err();
        assert!(err.to_string().contains("think time"), "{err}");
        let missing = dir.join("missing.toml");
        let err = spec(&["--stages-file", missing.to_str().unwrap()]).unwrap_err();
        assert!(err.to_string().contains("missing.toml"), "{err}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
