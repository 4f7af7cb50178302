//! The benchmark's image set, planned from a seed: which repositories and tags exist, which
//! layers each image uses and how large they are. Planning is pure; `generate` turns a plan
//! into blobs in a registry. The shape follows a product suite (see the module constants):
//! shared base stacks and runtimes, one dependency layer per repository shared by its tags,
//! one small app layer per tag, a few multi-arch indexes. The `small` variant has another
//! shape: many single-layer images, each with its own 4 KiB layer, round-robin over
//! `SMALL_REPOS` repositories, written as `tests/support/storage.rs` writes them.

/// Bumped whenever the plan or the blob encoding changes, so stale caches are not reused.
pub const GENERATOR_VERSION: u32 = 2;

const MB: f64 = 1e6;
/// Repositories in the standard set.
const REPOS: usize = 55;
/// Tags in the standard set.
const TAGS: usize = 200;
/// Most tags any repository gets.
const MAX_TAGS_PER_REPO: usize = 8;
/// Tags that are OCI indexes over linux/amd64 and linux/arm64.
const INDEX_TAGS: usize = 5;
/// Tags whose app layer is the previous tag's (about a tenth; 16 gives the 253 unique layers).
const REUSED_APP_LAYERS: usize = 16;
/// Layer bytes of the standard set; the log-uniform layers are scaled to reach it.
const TOTAL_LAYER_BYTES: f64 = 2.40e9;
/// The extra layer of the `big` variant: larger than any buffer a copier should hold.
pub const BIG_LAYER_BYTES: u64 = 2 << 30;
/// Repositories of the `small` variant.
pub const SMALL_REPOS: usize = 50;
/// Layer bytes of each image of the `small` variant.
pub const SMALL_LAYER_BYTES: usize = 4096;
/// Images of the `small` variant unless `--images` says otherwise.
pub const SMALL_IMAGES: usize = 10_000;

/// Which set to generate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Variant {
    /// 200 tags, about 2.40 GB of layers.
    Standard,
    /// The standard set plus one image with a 2 GiB layer.
    Big,
    /// `images` single-layer OCI images over `SMALL_REPOS` repositories, each with a unique
    /// layer of `SMALL_LAYER_BYTES`: what a copier spends per image rather than per byte.
    Small {
        /// How many.
        images: usize,
    },
}

impl Variant {
    /// Its name on the command line and in cache keys.
    pub fn name(self) -> &'static str {
        match self {
            Variant::Standard => "standard",
            Variant::Big => "big",
            Variant::Small { .. } => "small",
        }
    }
}

/// One layer: a tar holding one file of `payload` seeded random bytes, gzip-framed (in the
/// `small` variant, `payload` seeded bytes as they are).
#[derive(Clone, Debug)]
pub struct Layer {
    /// Seed of the file's bytes.
    pub seed: u64,
    /// Size of the file inside the tar.
    pub payload: u64,
}

/// One single-platform image.
#[derive(Clone, Debug)]
pub struct Image {
    /// `amd64` or `arm64` (always linux).
    pub arch: &'static str,
    /// Indexes into `Plan::layers`, bottom first.
    pub layers: Vec<usize>,
}

/// One tag: a single image (Docker schema 2) or an OCI index over two.
#[derive(Clone, Debug)]
pub struct Tag {
    /// The tag.
    pub name: String,
    /// Platform images; more than one means an index.
    pub images: Vec<Image>,
}

/// One repository and its tags.
#[derive(Clone, Debug)]
pub struct Repo {
    /// Path without registry, e.g. `apps/svc-00`.
    pub name: String,
    /// Its tags in push order.
    pub tags: Vec<Tag>,
}

/// A planned image set.
#[derive(Clone, Debug)]
pub struct Plan {
    /// Cache key: variant, generator version, seed.
    pub key: String,
    /// Every unique layer.
    pub layers: Vec<Layer>,
    /// Repositories in push order.
    pub repos: Vec<Repo>,
}

/// splitmix64: small, seedable, good enough to draw sizes and choices.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn uniform(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.unit()
    }
    fn log_uniform(&mut self, lo: f64, hi: f64) -> f64 {
        (lo.ln() + (hi.ln() - lo.ln()) * self.unit()).exp()
    }
    /// `k` distinct picks from `0..n`, in ascending order.
    fn pick(&mut self, n: usize, k: usize) -> Vec<usize> {
        let mut all: Vec<usize> = (0..n).collect();
        for i in 0..k {
            let j = i + self.below(n - i);
            all.swap(i, j);
        }
        let mut out = all[..k].to_vec();
        out.sort_unstable();
        out
    }
}

impl Plan {
    /// Plans the set for `variant` from `seed`. The big variant is the standard set plus one
    /// repository appended, so its blobs are a superset and its cache can start from the
    /// standard one.
    pub fn new(variant: Variant, seed: u64) -> Plan {
        if let Variant::Small { images } = variant {
            return Plan::small(images, seed);
        }
        let mut rng = Rng(seed);
        let mut layers = Vec::new();
        let add = |layers: &mut Vec<Layer>, payload: f64| {
            let idx = layers.len();
            layers.push(Layer {
                seed: seed.wrapping_mul(1_000_003).wrapping_add(idx as u64 + 1),
                payload: payload as u64,
            });
            idx
        };
        // Six base layers in four stacks: two OS layers, each with two flavours on top.
        let mut base_sizes = [38.0 * MB, 0.0, 0.0, 0.0, 0.0, 0.5 * MB];
        for s in &mut base_sizes[1..5] {
            *s = rng.log_uniform(0.5 * MB, 38.0 * MB);
        }
        let base: Vec<usize> = base_sizes.iter().map(|s| add(&mut layers, *s)).collect();
        let stacks = [[base[0], base[1]], [base[0], base[2]], [base[3], base[4]], [base[3], base[5]]];
        let runtimes: Vec<usize> = [52.0, 68.0, 95.0].iter().map(|s| add(&mut layers, s * MB)).collect();

        // Dependency layers: two of about 400 MB, five of 50-150 MB, the rest 1-20 MB.
        let order = rng.pick(REPOS, 7);
        let mut scaled = Vec::new();
        let deps: Vec<usize> = (0..REPOS)
            .map(|r| match order.iter().position(|&o| o == r) {
                Some(0 | 1) => add(&mut layers, rng.uniform(390.0, 410.0) * MB),
                Some(_) => add(&mut layers, rng.uniform(50.0, 150.0) * MB),
                None => {
                    let i = add(&mut layers, rng.log_uniform(1.0 * MB, 20.0 * MB));
                    scaled.push(i);
                    i
                }
            })
            .collect();

        // 1 to 8 tags per repository, 200 in all.
        let mut counts = vec![1usize; REPOS];
        let mut left = TAGS - REPOS;
        while left > 0 {
            let r = rng.below(REPOS);
            if counts[r] < MAX_TAGS_PER_REPO {
                counts[r] += 1;
                left -= 1;
            }
        }
        // Global tag numbers of the indexes and of the tags reusing their predecessor's app layer.
        let firsts: Vec<usize> = counts.iter().scan(0, |acc, c| Some(std::mem::replace(acc, *acc + c))).collect();
        let followers: Vec<usize> = (0..TAGS).filter(|t| !firsts.contains(t)).collect();
        let reused: Vec<usize> =
            rng.pick(followers.len(), REUSED_APP_LAYERS).into_iter().map(|i| followers[i]).collect();
        let plain: Vec<usize> = (0..TAGS).filter(|t| !reused.contains(t)).collect();
        let indexes: Vec<usize> = rng.pick(plain.len(), INDEX_TAGS).into_iter().map(|i| plain[i]).collect();

        let mut repos = Vec::new();
        let mut global = 0;
        for (r, &count) in counts.iter().enumerate() {
            let stack = stacks[rng.below(stacks.len())];
            // Half the repositories carry a runtime: with the default seed this gives the sharing
            // of the reference set (8.4x per image, 2.4x per repository, 76 shared layers).
            let runtime = (rng.unit() < 0.5).then(|| runtimes[rng.below(runtimes.len())]);
            let common: Vec<usize> = stack.iter().copied().chain(runtime).chain([deps[r]]).collect();
            let mut tags: Vec<Tag> = Vec::new();
            for t in 0..count {
                let app = match (reused.contains(&global), tags.last()) {
                    (true, Some(prev)) => *prev.images[0].layers.last().expect("app layer"),
                    _ => {
                        let i = add(&mut layers, rng.log_uniform(0.1 * MB, 10.0 * MB));
                        scaled.push(i);
                        i
                    }
                };
                let image = |arch, app| Image { arch, layers: common.iter().copied().chain([app]).collect() };
                let mut images = vec![image("amd64", app)];
                if indexes.contains(&global) {
                    let arm = add(&mut layers, rng.log_uniform(0.1 * MB, 10.0 * MB));
                    scaled.push(arm);
                    images.push(image("arm64", arm));
                }
                tags.push(Tag { name: format!("v{}.{}", 1 + t / 3, t % 3), images });
                global += 1;
            }
            let group = ["apps", "platform/core", "tools"][r % 3];
            repos.push(Repo { name: format!("{group}/svc-{r:02}"), tags });
        }

        // Scale the log-uniform layers so the set holds exactly the intended bytes.
        let fixed: u64 = (0..layers.len()).filter(|i| !scaled.contains(i)).map(|i| layers[i].payload).sum();
        let drawn: u64 = scaled.iter().map(|&i| layers[i].payload).sum();
        let factor = (TOTAL_LAYER_BYTES - fixed as f64) / drawn as f64;
        for &i in &scaled {
            layers[i].payload = (layers[i].payload as f64 * factor) as u64;
        }

        if variant == Variant::Big {
            let big = add(&mut layers, BIG_LAYER_BYTES as f64);
            let image = Image { arch: "amd64", layers: vec![stacks[0][0], stacks[0][1], big] };
            repos.push(Repo {
                name: "data/bigdata".into(),
                tags: vec![Tag { name: "v1.0".into(), images: vec![image] }],
            });
        }
        let plan = Plan { key: format!("{}-g{GENERATOR_VERSION}-s{seed}", variant.name()), layers, repos };
        let extra = usize::from(variant == Variant::Big);
        assert_eq!(plan.tag_count(), TAGS + extra, "planned tags");
        assert_eq!(plan.layers.len(), 253 + extra, "planned unique layers");
        plan
    }

    /// The `small` set: image `n` is `small/r<n mod SMALL_REPOS>:t<n>` with layer `n`, seeded
    /// the way `support::storage::small_images` seeds it.
    fn small(images: usize, seed: u64) -> Plan {
        let layers = (0..images)
            .map(|n| Layer {
                seed: seed.wrapping_mul(1_000_003).wrapping_add(n as u64),
                payload: SMALL_LAYER_BYTES as u64,
            })
            .collect();
        let mut repos: Vec<Repo> =
            (0..SMALL_REPOS.min(images)).map(|r| Repo { name: format!("small/r{r:02}"), tags: Vec::new() }).collect();
        for n in 0..images {
            let image = Image { arch: "amd64", layers: vec![n] };
            repos[n % SMALL_REPOS].tags.push(Tag { name: format!("t{n}"), images: vec![image] });
        }
        Plan { key: format!("small-n{images}-g{GENERATOR_VERSION}-s{seed}"), layers, repos }
    }

    /// Number of tags.
    pub fn tag_count(&self) -> usize {
        self.repos.iter().map(|r| r.tags.len()).sum()
    }
}

impl Plan {
    /// The planned shape in one line (payload bytes): `--plan-only` prints it, to check a
    /// seed or a change of the constants without generating anything.
    pub fn describe(&self) -> String {
        use std::collections::{BTreeMap, BTreeSet};
        let size = |l: &usize| self.layers[*l].payload;
        let total: u64 = self.layers.iter().map(|l| l.payload).sum();
        let (mut per_image, mut per_repo) = (0u64, 0u64);
        let mut users: BTreeMap<usize, usize> = BTreeMap::new();
        for repo in &self.repos {
            let mut in_repo = BTreeSet::new();
            for tag in &repo.tags {
                let used: BTreeSet<usize> = tag.images.iter().flat_map(|i| i.layers.iter().copied()).collect();
                per_image += used.iter().map(size).sum::<u64>();
                for l in used {
                    *users.entry(l).or_default() += 1;
                    in_repo.insert(l);
                }
            }
            per_repo += in_repo.iter().map(size).sum::<u64>();
        }
        let shared: Vec<usize> = users.iter().filter(|(_, n)| **n > 1).map(|(l, _)| *l).collect();
        let single_tag = self.repos.iter().filter(|r| r.tags.len() == 1).count();
        format!(
            "{}: {} tags in {} repositories, {} layers, {}; per image {:.2}x, per repository {:.2}x; {} shared layers holding {:.0} %; \
             {single_tag} single-tag repositories",
            self.key,
            self.tag_count(),
            self.repos.len(),
            self.layers.len(),
            human_bytes(total),
            per_image as f64 / total as f64,
            per_repo as f64 / total as f64,
            shared.len(),
            100.0 * shared.iter().map(size).sum::<u64>() as f64 / total as f64,
        )
    }
}

/// Bytes in GB, or in MB below one GB (the small set is a few tens of MB).
pub fn human_bytes(n: u64) -> String {
    if n >= 1_000_000_000 { format!("{:.3} GB", n as f64 / 1e9) } else { format!("{:.2} MB", n as f64 / 1e6) }
}
