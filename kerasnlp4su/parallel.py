"""Apply a function to a stream with a pool of processes or threads (bert4keras's `parallel_apply`)."""

import queue

import numpy as np

__all__ = ["parallel_apply", "parallel_apply_generator"]


class _Failure:
    """A worker's exception, carried back to the consumer to be raised there."""

    def __init__(self, error):
        self.error = error


def _worker_loop(func, in_queue, out_queue, seed_queue):
    # Forked workers inherit the parent's NumPy RNG state; reseed so that
    # random augmentations differ between workers.
    try:
        seed = seed_queue.get_nowait()
    except queue.Empty:
        pass
    else:
        np.random.seed(seed)
    while True:
        index, item = in_queue.get()
        try:
            out_queue.put((index, func(item)))
        except Exception as error:  # noqa: BLE001 - re-raised by the consumer
            out_queue.put((index, _Failure(error)))


def _result(pair):
    index, value = pair
    if isinstance(value, _Failure):
        raise RuntimeError(f"parallel_apply: func failed on item {index}") from value.error
    return index, value


def parallel_apply_generator(func, iterable, workers, max_queue_size, dummy=False,
                             random_seeds=True):
    """Yield `(index, func(item))` for every item, in completion order.

    `workers` processes (`dummy=True`: threads) take items from a queue of
    at most `max_queue_size`, so a long or endless `iterable` is read
    lazily. `random_seeds`: True reseeds NumPy's RNG in each worker from
    fresh entropy, a list gives one seed per worker, False keeps the
    inherited state. An exception in `func` is raised here as a
    RuntimeError naming the item (bert4keras's workers died silently and
    the loop hung).

    >>> sorted(parallel_apply_generator(abs, [-1, 2, -3], 2, 4, dummy=True))
    [(0, 1), (1, 2), (2, 3)]
    """
    if dummy:
        from multiprocessing.dummy import Pool, Queue
    else:
        from multiprocessing import Pool, Queue

    in_queue, out_queue, seed_queue = Queue(max_queue_size), Queue(), Queue()
    if random_seeds is True:
        random_seeds = [None] * workers
    for seed in random_seeds or []:
        seed_queue.put(seed)
    pool = Pool(workers, _worker_loop, (func, in_queue, out_queue, seed_queue))
    sent = received = 0
    try:
        for index, item in enumerate(iterable):
            while True:
                try:
                    in_queue.put((index, item), timeout=0.01)
                    break
                except queue.Full:
                    while not out_queue.empty():  # make room while workers are busy
                        yield _result(out_queue.get())
                        received += 1
            sent += 1
        while received < sent:
            yield _result(out_queue.get())
            received += 1
    finally:
        pool.terminate()


def parallel_apply(func, iterable, workers, max_queue_size, callback=None, dummy=False,
                   random_seeds=True, unordered=True):
    """`func` applied to every item by `workers` processes (threads with `dummy=True`).

    Without `callback`, returns the results: in completion order, or in
    input order with `unordered=False`. With `callback`, calls it on each
    result as it arrives and returns None. Other arguments as in
    `parallel_apply_generator`.

    >>> parallel_apply(abs, [-1, 2, -3], 2, 4, dummy=True, unordered=False)
    [1, 2, 3]
    """
    generator = parallel_apply_generator(func, iterable, workers, max_queue_size, dummy,
                                         random_seeds)
    if callback is not None:
        for _, result in generator:
            callback(result)
        return None
    if unordered:
        return [result for _, result in generator]
    return [result for _, result in sorted(generator, key=lambda pair: pair[0])]
