"""`hjr prepare`: a source's crops and labels, prepared into the data dir."""

from hjr.cli.flags import DATA, declared

HELP = "prepare a source into the data dir (done on first use anyway)"
FLAGS = declared(DATA)


def run(args, verbose):
    from data_pipeline.sources import parse_source
    from data_pipeline.store import HAS_FIELDS, folder_for, prepare

    source = parse_source(args.data)
    info = prepare(source, args.crop, args.data_dir)
    sizes = ", ".join(f"{k} {v}" for k, v in info["splits"].items())
    folder = folder_for(source, args.crop, args.data_dir)
    how = "hand box" if source.kind in HAS_FIELDS else args.crop
    print(f"hjr: {source} ({how} crops) in {folder}: {sizes}")
