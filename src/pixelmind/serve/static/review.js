// pixelmind web page, Review tab: pre-labels or suspected label errors one image at a time (GET/POST /v1/review).
// Shown only when the server was started with a review folder (`pixelmind review DIR`).
"use strict";

const review = { items: [], at: 0, kind: null, url: null, busy: false };
const reviewAsked = location.hash === "#review";  // read before the tabs start (they rewrite the hash)

const REVIEW_WORDS = {  // what accept and reject mean for each kind of folder
  prelabels: { title: "Review pre-labels", accept: "Accept label (A)", reject: "Reject: remove label (R)" },
  label_errors: { title: "Review suspected label errors", accept: "Wrong label: fix it (A)", reject: "Label is right (R)" },
};

async function initReview() {
  let body;
  try {
    body = await (await api("/v1/review")).json();
  } catch {
    return;  // no review folder on this server (404), or not allowed yet: the tab stays hidden
  }
  $("#tab-review").hidden = false;
  $("#tab-review").addEventListener("click", () => selectTab("review"));
  tabHooks.review = () => showReviewItem();
  setReview(body);
  $("#review-accept").addEventListener("click", () => decide("accept"));
  $("#review-reject").addEventListener("click", () => decide("reject"));
  $("#review-prev").addEventListener("click", () => moveReview(-1));
  $("#review-next").addEventListener("click", () => moveReview(1));
  document.addEventListener("keydown", (e) => {
    if ($("#view-review").hidden || e.target.closest("input, select, textarea") || e.ctrlKey || e.metaKey || e.altKey) return;
    const act = { a: () => decide("accept"), r: () => decide("reject"), ArrowLeft: () => moveReview(-1), ArrowRight: () => moveReview(1) }[e.key];
    if (act) { e.preventDefault(); act(); }
  });
  if (reviewAsked) selectTab("review");
}

function setReview(body) {
  review.items = body.items;
  review.kind = body.kind;
  const words = REVIEW_WORDS[body.kind];
  $("#review-title").textContent = `${words.title} (${body.task})`;
  $("#review-accept").textContent = words.accept;
  $("#review-reject").textContent = words.reject;
  const first = review.items.findIndex((it) => !it.decision);  // go on where the last session stopped
  review.at = first >= 0 ? first : 0;
}

function reviewProgress() {
  const decided = review.items.filter((it) => it.decision).length;
  $("#review-progress").textContent = `${review.at + 1} of ${review.items.length} · ${decided} decided`;
}

async function showReviewItem() {
  const it = review.items[review.at];
  const none = !it;
  for (const id of ["#review-accept", "#review-reject", "#review-prev", "#review-next"]) $(id).disabled = none;
  if (none) {
    $("#review-progress").textContent = "nothing to review in this folder";
    $("#review-image").removeAttribute("src");
    $("#review-caption").textContent = "";
    return;
  }
  reviewProgress();
  $("#review-prev").disabled = review.at === 0;
  $("#review-next").disabled = review.at === review.items.length - 1;
  $("#review-caption").textContent = `${it.image}: ${it.title}`;
  $("#review-done").textContent = it.decision ? `${it.decision}ed: ${it.done}` : "";
  try {
    const blob = await (await api(`/v1/review/${it.index}/image`)).blob();
    if (review.items[review.at] !== it) return;  // moved on while it loaded: the newer image wins
    if (review.url) URL.revokeObjectURL(review.url);
    review.url = URL.createObjectURL(blob);
    $("#review-image").src = review.url;
    $("#review-image").alt = `${it.image} with ${review.kind === "prelabels" ? "its pre-label" : "the suspected error"} drawn`;
  } catch (e) {
    showMessage(`review image: ${e.message}`);
  }
}

function moveReview(step) {
  const next = review.at + step;
  if (next < 0 || next >= review.items.length) return;
  review.at = next;
  showReviewItem();
}

async function decide(decision) {
  const it = review.items[review.at];
  if (!it || review.busy) return;
  review.busy = true;  // one decision at a time; released as soon as it is saved, not when the next image is shown
  let rec;
  try {
    const res = await api(`/v1/review/${it.index}`, {
      method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ decision }),
    });
    rec = await res.json();
  } catch (e) {
    showMessage(`review: ${e.message}`);
    return;
  } finally {
    review.busy = false;
  }
  it.decision = rec.decision;
  it.done = rec.done;
  clearMessage();
  if (review.at < review.items.length - 1) review.at += 1;
  await showReviewItem();
  if (rec.decided === rec.total) $("#review-done").textContent = `All ${rec.total} decided; last: ${rec.done}`;
}

window.initReview = initReview;
