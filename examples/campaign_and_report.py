"""A resumable campaign and its HTML report, from Python: the paper's LeNet (shipped
with jsma), its first 20 test samples, each attacked towards its 9 other classes.

    python examples/campaign_and_report.py [OUT]     # default OUT: ./example-run
"""

import sys
from pathlib import Path

import jsma
from jsma.campaign import AttackSettings, Campaign, CampaignSpec
from jsma.report import write_report

out = Path(sys.argv[1] if len(sys.argv) > 1 else "example-run")
data = jsma.load_mnist()
model = jsma.pretrained("paper").model
spec = CampaignSpec(samples=20, attack=AttackSettings(theta=1.0, output="probabilities"))
status = Campaign.run(out / "increasing", spec, model, data)  # run again: nothing is redone
print(f"{status.attacks_done} attacks, {status.throughput:.0f} attacks/s")
files = write_report([out / "increasing"], out / "report", data)
print(f"report: {files.html}")
