"""Documented defaults for the decision policy, the money figures and the random seeds.

Every number here is an assumption about a bank we do not have the books of; each carries its
reason so it can be challenged and changed in one place. The exported manifest records the
values used, so the function serves the policy that was evaluated.
"""

from __future__ import annotations

from credit_api.policy import Policy, ScoreScale

LOSS_GIVEN_DEFAULT = 0.45
"""Basel II/III foundation-IRB supervisory LGD for senior unsecured claims (CRE32.6 / BCBS 2004
para. 287): 45% of the exposure is lost when a loan goes bad. Conservative here because the loss
is charged on the full amount, ignoring instalments repaid before the default."""

ANNUAL_MARGIN = 0.05
"""Net interest margin per year, on the amount lent. German instalment credit (Ratenkredit) of the
1970s charged a flat monthly rate on the original amount (around 0.4-0.6% a month plus a 2-3% fee,
an effective rate of roughly 11-14% a year) while banks refinanced at roughly 5-9% (Bundesbank
discount and Lombard rates, 1973-75). About 5 points a year net of funding is our assumption;
because the charge was on the original amount for the whole term, ``amount x margin x months/12``
is a fair profit formula for such loans. With LGD 0.45 it puts break-even at p* = 0.10 for a
12-month loan and p* = 0.18 for a 24-month one."""

REVIEW_BAND = 0.2
"""Refer to a credit officer when expected profit is within +-20% of a good loan's profit, i.e.
when the probability of default is within +-20% of the break-even probability."""

SAMPLE_DEFAULT_RATE = 0.30
"""300 bad of 1000 in ``data/credit.csv``: bad loans were deliberately oversampled."""

POPULATION_DEFAULT_RATE: float | None = 0.05
"""Assumed share of bad loans among the bank's applicants. The data's documentation says only that
bad loans were heavily oversampled and that the real share was "much lower" (Grömping 2019, South
German Credit Data: Correcting a Widely Used Data Set); 5% is our assumption for a 1970s consumer
instalment book, in line with that statement. Set to None to decide on the sample's 30% (no
correction). ``reports/economics.md`` shows how the results move with this number."""

ANNUAL_APPLICATIONS = 10_000
"""Applications a year, to scale money figures: an assumption (a regional bank's consumer-credit
desk of the period; the data set's 1000 loans are a sample of 1973-75). Money scales linearly with it."""

DM_PER_USD = 2.59
"""Approximate 1974 average exchange rate (Deutsche Mark per US dollar), nominal, not adjusted for
inflation; used only to read the original "$1.2M saved" criterion against DM figures."""

SAVINGS_TARGET_USD = 1_200_000
"""The original success criterion: more than $1.2M saved a year."""

DEFAULTER_REDUCTION_TARGET = 0.10
"""The original success criterion: defaulters (among booked loans) down at least 10%."""

ACCURACY_TARGET = 0.70
"""The original success criterion; approving everyone already scores 0.70 on this sample."""

UCI_COST_BAD_APPROVED = 5.0
UCI_COST_GOOD_DECLINED = 1.0
"""The UCI documentation's cost matrix: approving a bad applicant costs 5, declining a good one 1."""

SEED = 20240601
"""Seed for everything random in training and evaluation (CV splits, searches, bootstrap)."""

BOOTSTRAP_RESAMPLES = 1000
CONFIDENCE = 0.95

DEFAULT_POLICY = Policy(
    loss_given_default=LOSS_GIVEN_DEFAULT,
    annual_margin=ANNUAL_MARGIN,
    review_band=REVIEW_BAND,
    sample_default_rate=SAMPLE_DEFAULT_RATE,
    population_default_rate=POPULATION_DEFAULT_RATE,
    annual_applications=ANNUAL_APPLICATIONS,
)

DEFAULT_SCALE = ScoreScale()
"""600 points at good:bad odds of 50:1, 20 points to double the odds (a common scorecard scaling);
the numbers live in ``credit_api.policy.ScoreScale``. Scores use the corrected probability."""
