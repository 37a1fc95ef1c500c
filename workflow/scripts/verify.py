import io
import sys

sys.path.insert(0, snakemake.scriptdir + "/../..")
from pipeline import integrity  # noqa: E402

report = io.StringIO()
damaged = integrity.verify(list(snakemake.params.stores), out=report)
with open(snakemake.log[0], "w") as log:
    log.write(report.getvalue())
sys.stdout.write(report.getvalue())
if damaged:
    sys.exit(f"verify: {damaged} store(s) damaged or unreadable (listed above and in {snakemake.log[0]})")
