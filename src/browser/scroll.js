// vaultkeep: scroll to the bottom a step at a time, so lazy images and lists load; at most
// 60 steps (an endless feed ends somewhere); then back to the top.
(async () => {
  const pause = ms => new Promise(resolve => setTimeout(resolve, ms));
  const step = Math.max(200, Math.floor(window.innerHeight * 0.8));
  let still = 0;
  for (let i = 0; i < 60 && still < 2; i++) {
    const before = window.scrollY;
    window.scrollBy(0, step);
    await pause(120);
    const bottom = window.scrollY + window.innerHeight >= document.documentElement.scrollHeight - 2;
    still = window.scrollY === before || bottom ? still + 1 : 0;
  }
  window.scrollTo(0, 0);
  await pause(100);
  return true;
})()
